"""Unique ids for the hot path: a random per-process prefix and a counter.

Cheaper than ``uuid4`` or ``secrets`` per request (no system call), unique across processes, and
reset in a forked child so two workers never share a prefix.
"""

from __future__ import annotations

import itertools
import os
import secrets


class ProcessIds:
    """``prefix_bytes`` random bytes (hex) followed by a ``counter_digits``-wide hex counter."""

    def __init__(self, *, prefix_bytes: int, counter_digits: int) -> None:
        self._prefix_bytes = prefix_bytes
        self._digits = counter_digits
        self.reset()
        os.register_at_fork(after_in_child=self.reset)

    def reset(self) -> None:
        self._prefix = secrets.token_hex(self._prefix_bytes)
        self._count = itertools.count(1)

    def next(self) -> str:
        return f"{self._prefix}{next(self._count):0{self._digits}x}"
