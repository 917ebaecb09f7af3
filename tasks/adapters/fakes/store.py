"""The bucket in a dict (:class:`MemoryStore`), with S3's conditional writes
and MD5 ETags; ``before`` hooks may fail or hold an operation."""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable

from ..s3 import Conflict


class MemoryStore:
    """A bucket in memory. Each hook in ``before`` is called with the
    operation ("get", "put", "delete", "listing") and key (or prefix)
    before it runs, and may raise. ``clock`` is the store's own time, which
    ages what it holds (a test may move it)."""

    def __init__(self, bucket: str = "memory", clock: Callable[[], float] = time.time) -> None:
        self.bucket = bucket
        self.clock = clock
        self.objects: dict[str, bytes] = {}
        self.written: dict[str, float] = {}
        self.before: list[Callable[[str, str], None]] = []
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def _call(self, operation: str, key: str) -> None:
        self.calls.append((operation, key))
        for hook in list(self.before):
            hook(operation, key)

    @staticmethod
    def etag(body: bytes) -> str:
        return f'"{hashlib.md5(body).hexdigest()}"'

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def check(self, listing: str = "") -> dict[str, str] | None:
        self._call("check", listing)
        with self._lock:
            return {k: self.etag(v) for k, v in sorted(self.objects.items())
                    if k.startswith(listing)}

    def get(self, key: str) -> tuple[bytes, str] | None:
        self._call("get", key)
        with self._lock:
            body = self.objects.get(key)
        return None if body is None else (body, self.etag(body))

    def get_aged(self, key: str) -> tuple[bytes, str, float] | None:
        found = self.get(key)
        if found is None:
            return None
        return (*found, self.clock() - self.written.get(key, self.clock()))

    def put(self, key: str, body: bytes, content_type: str = "application/json", *,
            if_match: str | None = None, if_none_match: bool = False) -> str:
        self._call("put", key)
        with self._lock:
            there = self.objects.get(key)
            if if_none_match and there is not None:
                raise Conflict(key)
            if if_match and (there is None or self.etag(there) != if_match):
                raise Conflict(key)
            self.objects[key] = body
            self.written[key] = self.clock()
        return self.etag(body)

    def delete(self, key: str) -> None:
        self._call("delete", key)
        with self._lock:
            self.objects.pop(key, None)
            self.written.pop(key, None)

    def listing(self, prefix: str) -> dict[str, str]:
        self._call("listing", prefix)
        with self._lock:
            return {k: self.etag(v) for k, v in sorted(self.objects.items())
                    if k.startswith(prefix)}
