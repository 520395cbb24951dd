"""GraphQL types generated from one model version, shaped exactly like Cube's GraphQL API.

Per public cube or view `line_items` (Cube's naming: `camelize(name)` for types, the name as is for
fields): `LineItemsMembers` (one field per member), `LineItemsWhereInput`, `LineItemsOrderByInput`
and, beyond Cube, the enum `LineItemsSegment`. `Result` has one field per cube/view, and
`RootWhereInput` / `RootOrderByInput` nest the per-cube inputs. Python attribute names are
positional (`m0`, `m1`, ...) so member names that are Python keywords cannot break the dataclasses;
GraphQL names are set explicitly.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Annotated, Any

import strawberry
from strawberry import UNSET
from strawberry.types.field import StrawberryField

from headless_bi.graphql import types as static
from headless_bi.semantic import catalog as visibility
from headless_bi.semantic.catalog import Visible
from headless_bi.semantic.model import Cube, Dimension, SemanticModel, View

# Type names the static schema uses, which a generated name must not take.
RESERVED = frozenset(
    {
        "String", "Int", "Float", "Boolean", "ID", "JSON", "DateTime", "Query", "Mutation", "Subscription",
        "Result", "RootWhereInput", "RootOrderByInput", "StringFilter", "FloatFilter", "BooleanFilter",
        "DateTimeFilter", "OrderBy", "TimeDimension", "ZonedTime", "TimeDimensionInput", "FilterInput",
        "OrderInput", "QueryInput", "Column", "QueryResult", "MemberKind", "MemberMeta", "CubeMeta",
        "Meta", "LiveUpdate", "ReloadResult",
    }
)  # fmt: skip
_OUTPUT = {"string": str, "number": float, "boolean": bool, "time": static.TimeDimension}
_FILTER = {
    "string": static.StringFilter,
    "number": static.FloatFilter,
    "boolean": static.BooleanFilter,
    "time": static.DateTimeFilter,
}


@dataclass(frozen=True)
class MemberField:
    """A measure or dimension field of a `<Cube>Members` type."""

    attr: str  # Python attribute on the Members object
    path: str  # owner.member, as queries name it
    kind: str  # measure | dimension
    type: str  # number | string | boolean | time


@dataclass(frozen=True)
class OwnerType:
    """The generated types of one cube or view and how its fields map to the model."""

    name: str
    attr: str  # Python attribute on Result
    members_cls: type
    members: dict[str, MemberField]
    segments: frozenset[str]


@dataclass
class TypedModel:
    owners: dict[str, OwnerType] = field(default_factory=dict)
    result_cls: type | None = None
    root_where: type | None = None
    root_order: type | None = None


def build_typed_model(model: SemanticModel) -> TypedModel:
    """All generated types; `result_cls` is None when the model has no public cube or view."""
    typed = TypedModel()
    result_fields: dict[str, tuple[Any, StrawberryField]] = {}
    where_fields: dict[str, tuple[Any, StrawberryField]] = {}
    order_fields: dict[str, tuple[Any, StrawberryField]] = {}
    used: set[str] = set()
    for index, owner in enumerate(visibility.owners(model)):
        visible = visibility.members(model, owner)
        data_members = [v for v in visible if v.kind != "segment"]
        if not data_members:
            continue  # as Cube: an object type needs at least one field
        base = _unique_base(pascal(owner.name), used)
        built = _owner_types(
            owner, base, f"o{index}", data_members, [v for v in visible if v.kind == "segment"]
        )
        typed.owners[owner.name] = built.owner
        attr = built.owner.attr
        result_fields[attr] = (None, _owner_field(owner, built))
        where_fields[attr] = (built.where_cls | None, strawberry.field(name=owner.name, default=UNSET))
        order_fields[attr] = (built.order_cls | None, strawberry.field(name=owner.name, default=UNSET))
    if not typed.owners:
        return typed
    typed.result_cls = make_type(
        "Result", result_fields, description="One result row: one field per cube or view."
    )
    root_where = types.new_class("RootWhereInput")
    where_fields = {
        "AND": (list[root_where] | None, strawberry.field(name="AND", default=UNSET)),
        "OR": (list[root_where] | None, strawberry.field(name="OR", default=UNSET)),
        **where_fields,
    }
    typed.root_where = make_type(
        "RootWhereInput",
        where_fields,
        description="Filters by cube; keys of one object are ANDed, AND/OR lists combine objects.",
        is_input=True,
        cls=root_where,
    )
    typed.root_order = make_type(
        "RootOrderByInput",
        order_fields,
        description="Sort keys by cube, in the order written.",
        is_input=True,
    )
    return typed


@dataclass(frozen=True)
class _Built:
    owner: OwnerType
    members_cls: type
    where_cls: type
    order_cls: type
    segment_enum: type | None


def _owner_types(
    owner: Cube | View, base: str, attr: str, data_members: list[Visible], segments: list[Visible]
) -> _Built:
    out_fields: dict[str, tuple[Any, StrawberryField]] = {}
    where_cls = types.new_class(f"{base}WhereInput")
    where_fields: dict[str, tuple[Any, StrawberryField]] = {
        "AND": (list[where_cls] | None, strawberry.field(name="AND", default=UNSET)),
        "OR": (list[where_cls] | None, strawberry.field(name="OR", default=UNSET)),
    }
    order_fields: dict[str, tuple[Any, StrawberryField]] = {}
    mapping: dict[str, MemberField] = {}
    for i, v in enumerate(data_members):
        kind_type = v.member.type if isinstance(v.member, Dimension) else "number"
        py = f"m{i}"
        mapping[v.name] = MemberField(py, v.path, v.kind, kind_type)
        desc = describe(v)
        out_fields[py] = (
            _OUTPUT[kind_type] | None,
            strawberry.field(name=v.name, description=desc, default=None),
        )
        where_fields[py] = (_FILTER[kind_type] | None, strawberry.field(name=v.name, default=UNSET))
        order_fields[py] = (static.OrderBy | None, strawberry.field(name=v.name, default=UNSET))
    title = _owner_description(owner)
    members_cls = make_type(f"{base}Members", out_fields, description=title)
    make_type(
        f"{base}WhereInput",
        where_fields,
        description=f"Filters on {owner.name}; keys are ANDed.",
        is_input=True,
        cls=where_cls,
    )
    order_cls = make_type(
        f"{base}OrderByInput", order_fields, description=f"Sort keys of {owner.name}.", is_input=True
    )
    segment_enum = _segment_enum(f"{base}Segment", owner, segments)
    names = frozenset(v.name for v in segments if v.name not in ("true", "false", "null"))
    return _Built(
        OwnerType(owner.name, attr, members_cls, mapping, names),
        members_cls,
        where_cls,
        order_cls,
        segment_enum,
    )


def _segment_enum(name: str, owner: Cube | View, segments: list[Visible]) -> type | None:
    values = {
        f"s{i}": strawberry.enum_value(v.name, name=v.name, description=describe(v))
        for i, v in enumerate(segments)
        if v.name not in ("true", "false", "null")  # not legal GraphQL enum values
    }
    if not values:
        return None
    return strawberry.enum(Enum(name, values), name=name, description=f"Segments of {owner.name}.")


def _owner_field(owner: Cube | View, built: _Built) -> StrawberryField:
    """The `Result.<cube>` field: Cube's `where` and `orderBy` arguments, plus `segments`."""
    attr = built.owner.attr

    def resolve(root: Any, **_: Any) -> Any:
        return root.__dict__.get(attr)

    params = [
        inspect.Parameter("root", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        _param("where", built.where_cls | None, "Filters on this cube's members."),
        _param("orderBy", built.order_cls | None, "Sort keys of this cube, in the order written."),
    ]
    if built.segment_enum is not None:
        params.append(
            _param(
                "segments",
                list[built.segment_enum] | None,
                "Named filters of the model to apply (headless-bi extension).",
            )
        )
    resolver = make_function(resolve, params, built.members_cls)
    return strawberry.field(resolver=resolver, name=owner.name, description=_owner_description(owner))


def _param(name: str, annotation: Any, description: str) -> inspect.Parameter:
    return inspect.Parameter(
        name,
        inspect.Parameter.KEYWORD_ONLY,
        default=UNSET,
        annotation=Annotated[annotation, strawberry.argument(description=description)],
    )


def make_type(
    name: str,
    fields: dict[str, tuple[Any, StrawberryField]],
    *,
    description: str | None = None,
    is_input: bool = False,
    cls: type | None = None,
) -> type:
    """A strawberry type from (annotation, field) pairs keyed by Python attribute.

    Fields with a resolver take their type from it: pass None as their annotation.
    """
    cls = cls or types.new_class(name)
    cls.__annotations__ = {attr: ann for attr, (ann, _) in fields.items() if ann is not None}
    for attr, (_, value) in fields.items():
        setattr(cls, attr, value)
    return strawberry.type(cls, name=name, description=description, is_input=is_input)


def make_function(
    fn: Callable[..., Any], params: list[inspect.Parameter], return_annotation: Any
) -> Callable[..., Any]:
    """`fn` with the signature strawberry reads to build a field's arguments (types built at run time)."""
    fn.__signature__ = inspect.Signature(params, return_annotation=return_annotation)  # type: ignore[attr-defined]
    return fn


def new_object(cls: type, values: dict[str, Any]) -> Any:
    """An instance without running the dataclass __init__: unset fields read the class default None."""
    obj = cls.__new__(cls)
    obj.__dict__.update(values)
    return obj


def pascal(name: str) -> str:
    """Cube's type naming (`inflection.camelize`): line_items -> LineItems."""
    text = "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)
    return text or "Cube"


def _unique_base(base: str, used: set[str]) -> str:
    """`base`, or `base2`, `base3`, ... when a generated name would clash with a static or earlier one."""
    suffixes = ("Members", "WhereInput", "OrderByInput", "Segment")
    candidate, n = base, 2
    while any(f"{candidate}{s}" in RESERVED or f"{candidate}{s}" in used for s in suffixes):
        candidate, n = f"{base}{n}", n + 1
    used.update(f"{candidate}{s}" for s in suffixes)
    return candidate


def describe(v: Visible) -> str:
    """The member's title, description, format and synonyms as one GraphQL description."""
    parts = [v.title + (f": {v.description.strip()}" if v.description else "")]
    fmt = getattr(v.member, "format", None)
    if fmt:
        parts.append(f"Format: {fmt}.")
    if v.member.synonyms:
        parts.append(f"Synonyms: {', '.join(v.member.synonyms)}.")
    return _sentences(parts)


def _owner_description(owner: Cube | View) -> str:
    text = owner.title
    if owner.description:
        text += f": {owner.description.strip()}"
    synonyms = owner.meta.get("synonyms") if isinstance(owner.meta, dict) else None
    extra = [f"Synonyms: {', '.join(map(str, synonyms))}."] if isinstance(synonyms, list) and synonyms else []
    return _sentences([text, *extra])


def _sentences(parts: list[str]) -> str:
    """Join with spaces, ending each part but the last alone with a period: "Revenue. Format: ..."."""
    if len(parts) == 1:
        return parts[0]
    return " ".join(p if p.endswith((".", "!", "?")) else p + "." for p in parts)
