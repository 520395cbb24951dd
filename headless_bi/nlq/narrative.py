"""A few plain sentences about a result: the total, the leader and laggard, the trend, the change.

Computed from the rows only (no model, no guessing), so every number in the narrative is one the
table shows or a sum/ratio of them.
"""

from __future__ import annotations

from typing import Any

from headless_bi.semantic.compiler import MemberAnnotation


def fmt(value: Any, format: str | None = None) -> str:
    """1234567.8 → '1.23M'; percents as '12.3%'; None as 'no value'. Money has no symbol: Cube's
    `currency` format does not say which currency (the demo's is EUR)."""
    if value is None:
        return "no value"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if format == "percent":
        return f"{value * 100:.1f}%" if abs(value) <= 1.5 else f"{value:.1f}%"
    sign, v = ("-" if value < 0 else ""), abs(value)
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if v >= limit:
            text = f"{v / limit:.2f}".rstrip("0").rstrip(".")
            return f"{sign}{text}{suffix}"
    text = f"{v:,.2f}".rstrip("0").rstrip(".") if not float(v).is_integer() else f"{int(v):,}"
    return f"{sign}{text}"


def _change(now: float | None, before: float | None) -> str:
    if now is None or before is None:
        return "cannot be compared (no value in one period)"
    if before == 0:
        return "up from zero" if now > 0 else "unchanged at zero"
    pct = (now - before) / abs(before) * 100
    if abs(pct) < 0.05:
        return "unchanged"
    return f"{'up' if pct > 0 else 'down'} {abs(pct):.1f}%"


def narrate(
    rows: list[dict[str, Any]],
    annotations: tuple[MemberAnnotation, ...],
    *,
    comparison: list[dict[str, Any]] | None = None,
    comparison_label: str | None = None,
    share: bool = False,
    limited: bool = False,
    additive: frozenset[str] = frozenset(),
) -> str:
    """`limited`: the rows are a top/bottom N, so shares are of the rows shown, not of everything.
    `additive`: measures whose rows add up to a total (sums and counts, not averages or ratios)."""
    measures = [a for a in annotations if a.kind == "measure"]
    groups = [a for a in annotations if a.kind != "measure"]
    if not rows:
        return "No rows match the question."
    if not measures:
        return f"{len(rows)} row{'s' if len(rows) != 1 else ''}."
    m = measures[0]
    title = m.short_title or m.title or m.key
    name = title.lower()
    if not groups and len(rows) == 1:
        parts = [f"{a.short_title or a.title}: {fmt(rows[0].get(a.key), a.format)}" for a in measures]
        text = "; ".join(parts) + "."
        if comparison:
            before = comparison[0].get(m.key)
            text += (f" Against {comparison_label or 'the earlier period'} ({fmt(before, m.format)}), "
                     f"{name} is {_change(rows[0].get(m.key), before)}.")  # fmt: skip
        return text
    time = next((a for a in groups if a.granularity), None)
    values = [r.get(m.key) for r in rows]
    numbers = [v for v in values if isinstance(v, int | float)]
    if time is not None and len(groups) == 1 and len(numbers) >= 2:
        first, last = rows[0], rows[-1]
        peak = max((r for r in rows if isinstance(r.get(m.key), int | float)), key=lambda r: r[m.key])
        text = (
            f"{title} went from {fmt(first.get(m.key), m.format)} ({_label(first, time)}) to "
            f"{fmt(last.get(m.key), m.format)} ({_label(last, time)}), "
            f"{_change(last.get(m.key), first.get(m.key))}; the peak was {_label(peak, time)} "
            f"({fmt(peak[m.key], m.format)})."
        )
    else:
        label_cols = [a for a in groups if not a.granularity] or groups
        ranked = sorted((r for r in rows if isinstance(r.get(m.key), int | float)), key=lambda r: -r[m.key])
        if not ranked:
            return f"{len(rows)} rows; {name} has no value."
        top, bottom = ranked[0], ranked[-1]
        total = sum(r[m.key] for r in ranked)
        lead = f"{_label(top, *label_cols)} leads with {fmt(top[m.key], m.format)}"
        if m.key in additive and total > 0 and (share or len(ranked) > 1):
            whole = f"the {len(ranked)} shown" if limited else "the total"
            lead += f" ({top[m.key] / total * 100:.1f}% of {whole}, {fmt(total, m.format)})"
        text = lead + "."
        if len(ranked) > 1:
            text += f" {_label(bottom, *label_cols)} is lowest with {fmt(bottom[m.key], m.format)}."
        text += f" {len(rows)} row{'s' if len(rows) != 1 else ''} in all."
    if comparison:
        now = sum(numbers) if numbers and m.key in additive else None
        before_vals = [r.get(m.key) for r in comparison if isinstance(r.get(m.key), int | float)]
        before = sum(before_vals) if before_vals and m.key in additive else None
        if now is not None and before is not None:
            text += (f" In total {fmt(now, m.format)} against {fmt(before, m.format)} for "
                     f"{comparison_label or 'the earlier period'}: {_change(now, before)}.")  # fmt: skip
    return text


def _label(row: dict[str, Any], *cols: MemberAnnotation) -> str:
    parts = []
    for a in cols:
        value = row.get(a.key)
        if a.granularity and isinstance(value, str):
            value = _period(value, a.granularity)
        parts.append("(none)" if value is None else str(value))
    return ", ".join(parts) or "the total"


def _period(value: str, granularity: str) -> str:
    """'2024-03-01T00:00:00.000' → '2024-03' for months, '2024' for years, the day otherwise."""
    day = value[:10]
    if granularity == "year":
        return day[:4]
    if granularity == "month":
        return day[:7]
    if granularity == "quarter":
        return f"{day[:4]} Q{(int(day[5:7]) - 1) // 3 + 1}"
    if granularity in ("hour", "minute", "second"):
        return value[:16].replace("T", " ")
    return day
