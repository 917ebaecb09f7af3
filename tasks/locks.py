"""Per-image build locks in S3, so two agents never build one image at once.

A lock is ``locks/<image>.json`` holding its owner and expiry, created with
``IfNoneMatch='*'`` (exactly one agent wins). The holder refreshes it while
Packer runs; a lock left by a killed agent expires and is taken over with
``IfMatch`` on its ETag, so two agents cannot both take it over.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

from typing import TYPE_CHECKING

from .errors import AmiError
from .registry import Conflict

if TYPE_CHECKING:
    from .run import Run


def owner() -> str:
    """Who holds a lock: host, process and Buildkite job (or a random tag)."""
    return (f"{socket.gethostname()}:{os.getpid()}:"
            f"{os.environ.get('BUILDKITE_JOB_ID') or uuid.uuid4().hex[:8]}")


@dataclass
class Lock:
    key: str
    etag: str


def _body(run: Run) -> bytes:
    now = time.time()
    me = run.once("lock-owner", owner)
    return json.dumps({"owner": me, "acquired": now, "expires": now + run.settings.lock_ttl}).encode()


def _acquire(run: Run, image: str, say: Callable[[str], None]) -> tuple[Lock, bool]:
    registry = run.registry
    key = registry.key("locks", f"{image}.json")
    waited = False
    while True:
        try:
            etag = registry.put(key, _body(run), if_none_match=True)
            return Lock(key, etag), waited
        except Conflict:
            pass
        found = registry.get(key)
        if found is None:
            continue                                    # released meanwhile
        try:
            held = json.loads(found[0])
            owner, expires = str(held["owner"]), float(held["expires"])
        except (ValueError, KeyError, TypeError):
            owner, expires = "unknown (unreadable lock)", 0.0
        if expires < time.time():
            try:
                etag = registry.put(key, _body(run), if_match=found[1])
                say(f"took over the expired lock of {owner}")
                return Lock(key, etag), waited
            except Conflict:
                continue
        if not waited:
            say(f"waiting for {owner}, who is building {image} "
                f"(lock expires in {expires - time.time():.0f} s)")
            waited = True
        if run.packers.wait(run.settings.lock_poll):
            raise AmiError(f"image {image}: interrupted while waiting for its lock")


def _refresh(run: Run, lock: Lock, stop: threading.Event) -> None:
    while not stop.wait(max(run.settings.lock_ttl / 3, 0.05)):
        try:
            lock.etag = run.registry.put(lock.key, _body(run), if_match=lock.etag)
        except (Conflict, AmiError):
            return          # taken over or unreachable: the build goes on, the lock lapses


def _release(run: Run, lock: Lock) -> None:
    try:
        found = run.registry.get(lock.key)
        if found and found[1] == lock.etag:
            run.registry.delete(lock.key)
    except AmiError:
        pass            # it expires by itself


@contextmanager
def held(run: Run, image: str, say: Callable[[str], None]) -> Iterator[bool]:
    """Hold the image's lock; yields whether we had to wait for another agent."""
    lock, waited = _acquire(run, image, say)
    stop = threading.Event()
    refresher = threading.Thread(target=_refresh, args=(run, lock, stop), daemon=True)
    refresher.start()
    try:
        yield waited
    finally:
        stop.set()
        refresher.join()
        _release(run, lock)
