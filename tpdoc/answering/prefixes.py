"""Prefilled pages kept in memory between questions about them.

In: each time a page is answered, its key (the page's visual-token cache key and the
prompt ids before the page) and, when asked for, the
``tpdoc.model.document_model.Prefix`` prefilled for it: the language model's KV cache up
to the end of the page's visual tokens. Out: the kept prefix of a page asked before, so
the next question costs only its own tokens.

A page is prefilled for keeping the second time it is asked, so pages asked once (most
of a batch over many files) keep their batched answering and cost no memory. Kept
prefixes are dropped least recently used first once their KV bytes pass the budget.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Any


class PrefixCache:
    """Prefixes by page key, bounded by the bytes of their KV caches."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._kept: OrderedDict[Hashable, Any] = OrderedDict()  # key -> Prefix
        # Pages asked once, by hash: a batch over many files keeps only small integers. A
        # collision merely keeps some page one question early.
        self._seen: set[int] = set()
        self.hits = 0

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def nbytes(self) -> int:
        return sum(prefix.nbytes for prefix in self._kept.values())

    def get(self, key: Hashable) -> Any | None:
        """The page's kept prefix, now the most recently used, or None."""
        prefix = self._kept.get(key)
        if prefix is not None:
            self._kept.move_to_end(key)
            self.hits += 1
        return prefix

    def wanted(self, key: Hashable) -> bool:
        """Whether to prefill this page for keeping: it was asked before."""
        if hash(key) in self._seen:
            return self.max_bytes > 0
        self._seen.add(hash(key))
        return False

    def put(self, key: Hashable, prefix: Any) -> None:
        """Keep ``prefix``, dropping the least recently used ones over the budget (a
        prefix larger than the whole budget is not kept)."""
        if prefix.nbytes > self.max_bytes:
            return
        self._kept[key] = prefix
        self._kept.move_to_end(key)
        total = self.nbytes
        while total > self.max_bytes:
            _, dropped = self._kept.popitem(last=False)
            total -= dropped.nbytes
