"""Flat result rows → the nested `Result` objects of the typed API, with times as ISO instants.

Rows hold times as wall-clock text: bucketed values in the query's time zone, plain values as stored
(UTC instants, or calendar dates for DATE columns, which are read in the query zone like buckets).
Each becomes a UTC instant (Cube's `DateTime`) and, for `zoned`, the same instant with the zone's
offset. Conversions are cached per distinct text: buckets repeat across rows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from headless_bi.graphql.selection import Plan, TimePick
from headless_bi.graphql.typed_schema import TypedModel, new_object
from headless_bi.graphql.types import TimeDimension, ZonedTime


class TimeText:
    """Wall-clock text → (UTC instant, zoned ISO) strings, for one time zone."""

    def __init__(self, timezone: str):
        self.timezone = timezone
        self.zone = ZoneInfo(timezone)
        self._local: dict[str, tuple[str, str]] = {}
        self._utc: dict[str, tuple[str, str]] = {}

    def local(self, text: str | None) -> tuple[str | None, str | None]:
        """`text` is a wall-clock time in the query zone (a bucket start or a calendar date)."""
        if text is None:
            return None, None
        found = self._local.get(text)
        if found is None:
            aware = _parse(text).replace(tzinfo=self.zone)
            found = self._local[text] = (_utc_iso(aware), _iso(aware))
        return found

    def utc(self, text: str | None) -> tuple[str | None, str | None]:
        """`text` is a stored UTC instant."""
        if text is None:
            return None, None
        found = self._utc.get(text)
        if found is None:
            aware = _parse(text).replace(tzinfo=UTC)
            found = self._utc[text] = (_utc_iso(aware), _iso(aware.astimezone(self.zone)))
        return found


def reshape(
    rows: list[dict[str, Any]],
    plan: Plan,
    typed: TypedModel,
    timezone: str,
    calendar_dates: frozenset[str] = frozenset(),
) -> list[Any]:
    """One `Result` per row, holding only the owners and members the selection asked for."""
    assert typed.result_cls is not None
    times = TimeText(timezone)
    owners = []
    for name, picked in plan.owners.items():
        owner = typed.owners[name]
        columns = [
            (m.attr, m.path, plan.times.get(m.path) if m.type == "time" else None) for m in picked.values()
        ]
        owners.append((owner.attr, owner.members_cls, columns))
    out = []
    for row in rows:
        result: dict[str, Any] = {}
        for attr, members_cls, columns in owners:
            values = {}
            for member_attr, path, pick in columns:
                if pick is None:
                    values[member_attr] = row.get(path)
                else:
                    values[member_attr] = _time_value(row, path, pick, times, path in calendar_dates)
            result[attr] = new_object(members_cls, values)
        out.append(new_object(typed.result_cls, result))
    return out


def _time_value(row: dict[str, Any], path: str, pick: TimePick, times: TimeText, calendar: bool) -> Any:
    utc: dict[str, Any] = {}
    zoned: dict[str, Any] = {"timezone": times.timezone}
    if pick.plain:
        convert = times.local if calendar else times.utc
        utc["value"], zoned["value"] = convert(row.get(path))
    for granularity in pick.granularities:
        utc[granularity], zoned[granularity] = times.local(row.get(f"{path}.{granularity}"))
    utc["zoned"] = new_object(ZonedTime, zoned)
    return new_object(TimeDimension, utc)


def _parse(text: str) -> datetime:
    value = datetime.fromisoformat(str(text))
    return value.replace(tzinfo=None)


def _iso(aware: datetime) -> str:
    return aware.isoformat(timespec="milliseconds")


def _utc_iso(aware: datetime) -> str:
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
