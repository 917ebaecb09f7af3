"""Values computed once and shared by the threads of a run."""

from __future__ import annotations

import threading
from typing import Callable, Generic, Hashable, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Once(Generic[T]):
    """A value made on first use, once, whichever thread asks first."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: list[T] = []

    def __call__(self) -> T:
        with self._lock:
            if not self._value:
                self._value.append(self._make())
            return self._value[0]


class Memo(Generic[K, T]):
    """``make(key)`` once per key. The lock is re-entrant: a value may be
    made from other values of the same memo."""

    def __init__(self, make: Callable[[K], T]) -> None:
        self._make = make
        self._lock = threading.RLock()
        self._values: dict[K, T] = {}

    def __call__(self, key: K) -> T:
        with self._lock:
            if key not in self._values:
                self._values[key] = self._make(key)
            return self._values[key]
