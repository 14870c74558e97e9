"""Byte-bounded least-recently-used accounting: which entries to drop to admit one more.

A pure decision, no I/O: the multi-model cache (workers/multi_model.py) keeps
one `ByteLru` for loaded models (bounded by the variant's `model_memory_mb`)
and one for artifacts on disk (bounded by SLUICEWAY_MODEL_DISK_MB). Worked
example, a budget of 100 MB holding a (40, used first), b (30) and c (20),
90 MB in all: admitting d of 25 MB needs 15 MB freed → evict a (the least
recently used) → 50 + 25 = 75 MB. An entry larger than the whole budget is
never admitted (`TooLarge` names both sizes); nothing is evicted for it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class TooLarge(Exception):
    """An entry bigger than the whole budget."""

    size_bytes: int
    budget_bytes: int

    def __str__(self) -> str:
        return f"{_mb(self.size_bytes)} is more than the whole budget of {_mb(self.budget_bytes)}"


def _mb(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB"


class ByteLru:
    """Entries with sizes in bytes, least recently used first; bounded by `budget_bytes`."""

    def __init__(self, budget_bytes: int) -> None:
        if budget_bytes <= 0:
            raise ValueError(f"budget_bytes must be positive, got {budget_bytes}")
        self.budget_bytes = budget_bytes
        self._sizes: OrderedDict[Hashable, int] = OrderedDict()
        self.used_bytes = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._sizes

    def __len__(self) -> int:
        return len(self._sizes)

    def keys(self) -> list[Hashable]:
        """Keys, least recently used first."""
        return list(self._sizes)

    def size_of(self, key: Hashable) -> int:
        return self._sizes[key]

    def touch(self, key: Hashable) -> None:
        """Mark `key` as just used (KeyError if absent)."""
        self._sizes.move_to_end(key)

    def victims(self, size_bytes: int, *, keep: Hashable | None = None) -> list[Hashable]:
        """The keys to evict, oldest first, so `size_bytes` more fits; TooLarge if it never can.

        `keep` (an entry being replaced, say) is not counted and never chosen.
        """
        if size_bytes > self.budget_bytes:
            raise TooLarge(size_bytes, self.budget_bytes)
        used = self.used_bytes - (self._sizes.get(keep, 0) if keep is not None else 0)
        chosen: list[Hashable] = []
        for key, size in self._sizes.items():
            if used + size_bytes <= self.budget_bytes:
                break
            if key == keep:
                continue
            chosen.append(key)
            used -= size
        return chosen

    def add(self, key: Hashable, size_bytes: int) -> None:
        """Record `key` as the most recently used entry (replacing its old size)."""
        self.discard(key)
        self._sizes[key] = size_bytes
        self.used_bytes += size_bytes

    def discard(self, key: Hashable) -> int:
        """Forget `key`; its size (0 if it was absent)."""
        size = self._sizes.pop(key, 0)
        self.used_bytes -= size
        return size
