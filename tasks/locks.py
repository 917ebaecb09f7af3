"""Build locks in S3, one per image and digest, so two agents never build
the same inputs at once, and gc never deletes an AMI a reuse is making
current. Work on other inputs of the same image does not wait.

A lock is ``locks/<image>/<digest>.json`` holding its owner and expiry,
created with ``IfNoneMatch='*'`` (exactly one agent wins). The holder
refreshes it every TTL/3 while it works, and keeps trying after a failed
refresh. A lock is taken over (with ``IfMatch`` on its ETag, so two agents
cannot both take it) when it has expired, when its expiry is unreadable,
or at once when its owner is a process on this host that no longer runs.
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
from typing import TYPE_CHECKING, Callable, Iterator

from .errors import AmiError
from .registry import Conflict

if TYPE_CHECKING:
    from .run import Run

RELEASE_TRIES = 3


@dataclass
class Lock:
    key: str
    etag: str
    lost: bool = False          # taken over by another agent while we held it


def _process_start(pid: int) -> str | None:
    """When a process started (clock ticks since boot), to tell a reused PID."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner() -> dict[str, object]:
    """Who holds a lock: host, process (and its start) and Buildkite job."""
    host, pid = socket.gethostname(), os.getpid()
    job = os.environ.get("BUILDKITE_JOB_ID") or uuid.uuid4().hex[:8]
    return {"owner": f"{host}:{pid}:{job}", "host": host, "pid": pid,
            "pid_start": _process_start(pid)}


def key(run: Run, image: str, digest: str) -> str:
    return run.registry.key("locks", image, f"{digest}.json")


def _body(run: Run) -> bytes:
    now = time.time()
    return json.dumps({**run.once("lock-owner", owner), "acquired": now,
                       "expires": now + run.settings.lock_ttl}).encode()


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


def _read(found: tuple[bytes, str]) -> tuple[dict, str, float]:
    try:
        held = json.loads(found[0])
        who, expires = str(held["owner"]), float(held["expires"])
    except (ValueError, KeyError, TypeError):
        return {}, "unknown (unreadable lock)", 0.0
    return held, who, expires if math.isfinite(expires) else 0.0


def _acquire(run: Run, image: str, digest: str, say: Callable[[str], None],
             wait: bool) -> tuple[Lock | None, str]:
    """The lock, or (without ``wait``) None and who holds it."""
    registry = run.registry
    lock_key = key(run, image, digest)
    said = False
    while True:
        try:
            return Lock(lock_key, registry.put(lock_key, _body(run), if_none_match=True)), ""
        except Conflict:
            pass
        found = registry.get(lock_key)
        if found is None:
            continue                                    # released meanwhile
        held, who, expires = _read(found)
        gone = _gone_here(held)
        if expires < time.time() or gone:
            try:
                etag = registry.put(lock_key, _body(run), if_match=found[1])
            except Conflict:
                continue
            say(f"took over the lock of {who}" + (" (that process is gone)" if gone else
                                                  " (it had expired)"))
            return Lock(lock_key, etag), ""
        if not wait:
            return None, who
        if not said:
            say(f"waiting for {who}, who is building {image} with these inputs "
                f"(its lock expires in {expires - time.time():.0f} s unless renewed)")
            said = True
        if run.packers.wait(run.settings.lock_poll):
            raise AmiError(f"image {image}: interrupted while waiting for its lock")


def _refresh(run: Run, lock: Lock, stop: threading.Event, say: Callable[[str], None]) -> None:
    interval = max(run.settings.lock_ttl / 3, 0.05)
    while not stop.wait(interval):
        try:
            lock.etag = run.registry.put(lock.key, _body(run), if_match=lock.etag)
        except Conflict:
            lock.lost = True
            say(f"lost the lock {lock.key}: another agent took it over; this build will not "
                "replace a newer one")
            return
        except AmiError as err:
            say(f"could not renew the lock ({err}); trying again")


def _release(run: Run, lock: Lock, say: Callable[[str], None]) -> None:
    if lock.lost:
        return
    problem = None
    for attempt in range(RELEASE_TRIES):
        try:
            found = run.registry.get(lock.key)
            if found and found[1] == lock.etag:
                run.registry.delete(lock.key)
            return
        except AmiError as err:
            problem = err
            if attempt + 1 < RELEASE_TRIES:
                time.sleep(0.2 * 2 ** attempt)
    say(f"warning: could not release the lock {lock.key} ({problem}); it expires by itself "
        f"within {run.settings.lock_ttl:.0f} s")


@contextmanager
def _holding(run: Run, lock: Lock, say: Callable[[str], None]) -> Iterator[Lock]:
    stop = threading.Event()
    refresher = threading.Thread(target=_refresh, args=(run, lock, stop, say), daemon=True)
    refresher.start()
    try:
        yield lock
    finally:
        stop.set()
        refresher.join()
        _release(run, lock, say)


@contextmanager
def held(run: Run, image: str, digest: str, say: Callable[[str], None]) -> Iterator[Lock]:
    """Hold the lock of these inputs of ``image``, waiting for another holder."""
    lock, _ = _acquire(run, image, digest, say, wait=True)
    assert lock is not None
    with _holding(run, lock, say) as holding:
        yield holding


@contextmanager
def held_if_free(run: Run, image: str, digest: str,
                 say: Callable[[str], None]) -> Iterator[tuple[Lock | None, str]]:
    """Hold the lock if nobody does; else yield None and who holds it."""
    lock, who = _acquire(run, image, digest, say, wait=False)
    if lock is None:
        yield None, who
        return
    with _holding(run, lock, say) as holding:
        yield holding, ""
