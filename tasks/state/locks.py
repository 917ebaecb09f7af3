"""Build locks in S3, one per image and digest, so two agents never build
the same inputs at once, and gc never deletes an AMI a reuse is making
current. Work on other inputs of the same image does not wait.

A lock is ``locks/<image>/<digest>.json`` holding its owner and TTL,
created with ``IfNoneMatch='*'`` (exactly one agent wins). The holder
refreshes it every TTL/3 while it works, and keeps trying after a failed
refresh; a refresh refused because the lock changed is ours still when the
body holds our nonce (a renewal whose reply was lost). A lock is taken over (with ``IfMatch`` on its ETag, so two agents
cannot both take it) when it has expired, when it is unreadable, or at once
when its owner is a process on this host that no longer runs.

Expiry is judged by S3's clock alone: a lock has expired when the time
since it was last written (the reply's ``Date`` minus its ``LastModified``)
exceeds its TTL, so agents whose clocks disagree by minutes still agree on
it. A TTL over :data:`MAX_LOCK_TTL` counts as that: a lock claiming a year
is still taken over an hour after its holder stopped renewing it.
Releasing is retried; a release that still fails is a warning (the lock
expires by itself), never the build's error.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..adapters.s3 import Conflict, Store
from ..core.errors import AmiError, INTERRUPTED
from ..core.settings import MAX_LOCK_TTL

RELEASE_TRIES = 3


@dataclass
class Lock:
    key: str
    etag: str
    nonce: str                  # this acquisition's, in the lock's body
    lost: bool = False          # taken over by another agent while we held it


def _process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot), to tell a reused PID."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner(job_id: str = "") -> dict[str, object]:
    """Who holds a lock: host, process (and its start) and Buildkite job."""
    host, pid = socket.gethostname(), os.getpid()
    job = job_id or uuid.uuid4().hex[:8]
    return {"owner": f"{host}:{pid}:{job}", "host": host, "pid": pid,
            "pid_start": _process_start(pid)}


def _gone_here(held: dict) -> bool:
    """Its owner ran on this host and runs no more (killed, or the PID reused)."""
    if held.get("host") != socket.gethostname() or not isinstance(held.get("pid"), int):
        return False
    pid = held["pid"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return held.get("pid_start") is not None and _process_start(pid) != held["pid_start"]


def _read(body: bytes) -> tuple[dict, str, float | None]:
    """The lock's body, its owner and its TTL (None when unreadable). A lock
    written before TTLs were stored says it as ``expires - acquired``, both
    by its writer's clock."""
    try:
        held = json.loads(body)
        who = str(held["owner"])
    except (ValueError, KeyError, TypeError):
        return {}, "unknown (unreadable lock)", None
    try:
        ttl = float(held["ttl"]) if "ttl" in held else \
            float(held["expires"]) - float(held["acquired"])
    except (ValueError, KeyError, TypeError):
        return held, who, None
    return held, who, None if math.isnan(ttl) else min(ttl, MAX_LOCK_TTL)


class Locks:
    """The build locks of one run: in ``store`` under ``prefix``, held by
    ``holder`` (see :func:`owner`), expiring ``ttl`` seconds after the last
    renewal; a waiting agent looks again every ``poll`` seconds with
    ``wait(seconds)``, which returns True when the run is interrupted.
    ``now`` stamps a lock for people reading it; nothing is judged by it."""

    def __init__(self, store: Store, prefix: str, holder: dict[str, object], ttl: float,
                 poll: float, wait: Callable[[float], bool],
                 now: Callable[[], float] = time.time) -> None:
        self.store = store
        self.now = now
        self.prefix = prefix
        self.holder = holder
        self.ttl = ttl
        self.poll = poll
        self.wait = wait

    def key(self, image: str, digest: str) -> str:
        return f"{self.prefix}locks/{image}/{digest}.json"

    def _body(self, nonce: str) -> bytes:
        now = self.now()
        return json.dumps({**self.holder, "nonce": nonce, "ttl": self.ttl, "acquired": now,
                           "expires": now + self.ttl}).encode()

    def _acquire(self, image: str, digest: str, say: Callable[[str], None],
                 wait: bool) -> tuple[Lock | None, str]:
        """The lock, or (without ``wait``) None and who holds it."""
        store = self.store
        lock_key = self.key(image, digest)
        nonce = uuid.uuid4().hex
        said = False
        while True:
            try:
                etag = store.put(lock_key, self._body(nonce), if_none_match=True)
                return Lock(lock_key, etag, nonce), ""
            except Conflict:
                pass
            found = store.get_aged(lock_key)
            if found is None:
                continue                                    # released meanwhile
            held, who, ttl = _read(found[0])
            age = found[2]
            if held.get("nonce") == nonce:
                # Our create went through but its reply was lost; the retry found it.
                return Lock(lock_key, found[1], nonce), ""
            gone = _gone_here(held)
            if ttl is None or age > ttl or gone:
                try:
                    etag = store.put(lock_key, self._body(nonce), if_match=found[1])
                except Conflict:
                    continue
                why = "that process is gone" if gone else \
                    "its TTL could not be read" if ttl is None else "it had expired"
                say(f"took over the lock of {who} ({why})")
                return Lock(lock_key, etag, nonce), ""
            if not wait:
                return None, who
            if not said:
                say(f"waiting for {who}, who is building {image} with these inputs "
                    f"(its lock expires in {max(ttl - age, 0):.0f} s unless renewed)")
                said = True
            if self.wait(self.poll):
                raise AmiError(f"image {image}: interrupted while waiting for its lock", code=INTERRUPTED)

    def _refresh(self, lock: Lock, stop: threading.Event, say: Callable[[str], None]) -> None:
        interval = max(self.ttl / 3, 0.05)
        while not stop.wait(interval):
            try:
                lock.etag = self.store.put(lock.key, self._body(lock.nonce), if_match=lock.etag)
                continue
            except Conflict:
                pass
            except AmiError as err:
                say(f"could not renew the lock ({err}); trying again")
                continue
            try:
                etag = self._still_ours(lock)
            except AmiError as err:
                say(f"could not renew the lock ({err}); trying again")
                continue
            if etag:
                lock.etag = etag        # a renewal went through but its reply was lost
                continue
            lock.lost = True
            say(f"lost the lock {lock.key}: another agent took it over; this build will "
                "not replace a newer one")
            return

    def _still_ours(self, lock: Lock) -> str | None:
        """The lock's ETag when its body is still this acquisition's (its
        nonce), whatever ETag we last heard of; else None."""
        found = self.store.get(lock.key)
        if found is None or _read(found[0])[0].get("nonce") != lock.nonce:
            return None
        return found[1]

    def _release(self, lock: Lock, say: Callable[[str], None]) -> None:
        if lock.lost:
            return
        problem = None
        for attempt in range(RELEASE_TRIES):
            try:
                if self._still_ours(lock):
                    self.store.delete(lock.key)
                return
            except AmiError as err:
                problem = err
                if attempt + 1 < RELEASE_TRIES:
                    time.sleep(0.2 * 2 ** attempt)
        say(f"warning: could not release the lock {lock.key} ({problem}); it expires by "
            f"itself within {self.ttl:.0f} s")

    @contextmanager
    def _holding(self, lock: Lock, say: Callable[[str], None]) -> Iterator[Lock]:
        stop = threading.Event()
        refresher = threading.Thread(target=self._refresh, args=(lock, stop, say), daemon=True)
        refresher.start()
        try:
            yield lock
        finally:
            stop.set()
            refresher.join()
            self._release(lock, say)

    @contextmanager
    def held(self, image: str, digest: str, say: Callable[[str], None]) -> Iterator[Lock]:
        """Hold the lock of these inputs of ``image``, waiting for another holder."""
        lock, _ = self._acquire(image, digest, say, wait=True)
        assert lock is not None
        with self._holding(lock, say) as holding:
            yield holding

    @contextmanager
    def held_if_free(self, image: str, digest: str,
                     say: Callable[[str], None]) -> Iterator[tuple[Lock | None, str]]:
        """Hold the lock if nobody does; else yield None and who holds it."""
        lock, who = self._acquire(image, digest, say, wait=False)
        if lock is None:
            yield None, who
            return
        with self._holding(lock, say) as holding:
            yield holding, ""
