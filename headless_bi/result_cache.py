"""Recent results, keyed by what fully determines them: the compiled SQL and the security context.

The compiled SQL already carries every row filter and mask of the caller's policies, so two callers
whose policies differ can never produce the same key; the policy key is part of the key as well, so
a cache hit is only ever shared between callers that see exactly the same data. Entries expire after
`ttl_s` (Cube's default refresh is 10 s) and the cache holds at most `max_rows` rows in all.
`renewQuery: true` skips the lookup, as in Cube.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class CachedResult:
    table: pa.Table
    total: int | None
    stored_at: float


class ResultCache:
    def __init__(self, ttl_s: float, max_rows: int = 1_000_000):
        self.ttl_s = ttl_s
        self.max_rows = max_rows
        self._entries: OrderedDict[tuple[str, ...], CachedResult] = OrderedDict()
        self._rows = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    def get(self, key: tuple[str, ...]) -> CachedResult | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and time.monotonic() - entry.stored_at <= self.ttl_s:
                self._entries.move_to_end(key)
                self.hits += 1
                return entry
            if entry is not None:
                self._drop(key)
            self.misses += 1
            return None

    def put(self, key: tuple[str, ...], table: pa.Table, total: int | None) -> None:
        if table.num_rows > self.max_rows // 10:  # one huge result must not flush everything else
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = CachedResult(table, total, time.monotonic())
            self._rows += table.num_rows
            while self._rows > self.max_rows and self._entries:
                self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._rows = 0

    def _drop(self, key: tuple[str, ...]) -> None:
        entry = self._entries.pop(key)
        self._rows -= entry.table.num_rows
