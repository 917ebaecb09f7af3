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

from . import aws, packer, registry
from .config import Settings
from .errors import AmiError

OWNER = (f"{socket.gethostname()}:{os.getpid()}:"
         f"{os.environ.get('BUILDKITE_JOB_ID') or uuid.uuid4().hex[:8]}")


@dataclass
class Lock:
    key: str
    etag: str


def lock_key(settings: Settings, image: str) -> str:
    return f"{settings.prefix}locks/{image}.json"


def _body(ttl: float) -> bytes:
    now = time.time()
    return json.dumps({"owner": OWNER, "acquired": now, "expires": now + ttl}).encode()


def _acquire(settings: Settings, region: str, image: str,
             say: Callable[[str], None]) -> tuple[Lock, bool]:
    key = lock_key(settings, image)
    waited = False
    while True:
        try:
            etag = registry.put_object(settings, region, key, _body(settings.lock_ttl),
                                       "application/json", if_none_match=True)
            return Lock(key, etag), waited
        except registry.Conflict:
            pass
        found = registry.get_object(settings, region, key)
        if found is None:
            continue                                    # released meanwhile
        try:
            held = json.loads(found[0])
            owner, expires = str(held["owner"]), float(held["expires"])
        except (ValueError, KeyError, TypeError):
            owner, expires = "unknown (unreadable lock)", 0.0
        if expires < time.time():
            try:
                etag = registry.put_object(settings, region, key, _body(settings.lock_ttl),
                                           "application/json", if_match=found[1])
                say(f"took over the expired lock of {owner}")
                return Lock(key, etag), waited
            except registry.Conflict:
                continue
        if not waited:
            say(f"waiting for {owner}, who is building {image} "
                f"(lock expires in {expires - time.time():.0f} s)")
            waited = True
        if packer.wait_or_interrupted(settings.lock_poll):
            raise AmiError(f"image {image}: interrupted while waiting for its lock")


def _refresh(settings: Settings, region: str, lock: Lock, stop: threading.Event) -> None:
    while not stop.wait(max(settings.lock_ttl / 3, 0.05)):
        try:
            lock.etag = registry.put_object(settings, region, lock.key, _body(settings.lock_ttl),
                                            "application/json", if_match=lock.etag)
        except (registry.Conflict, AmiError):
            return          # taken over or unreachable: the build goes on, the lock lapses


def _release(settings: Settings, region: str, lock: Lock) -> None:
    found = registry.get_object(settings, region, lock.key)
    if found and found[1] == lock.etag:
        try:
            aws.client(settings, "s3", region).delete_object(Bucket=settings.bucket, Key=lock.key)
        except aws.aws_errors():
            pass            # it expires by itself


@contextmanager
def held(settings: Settings, region: str, image: str,
         say: Callable[[str], None]) -> Iterator[bool]:
    """Hold the image's lock; yields whether we had to wait for another agent."""
    lock, waited = _acquire(settings, region, image, say)
    stop = threading.Event()
    refresher = threading.Thread(target=_refresh, args=(settings, region, lock, stop), daemon=True)
    refresher.start()
    try:
        yield waited
    finally:
        stop.set()
        refresher.join()
        _release(settings, region, lock)
