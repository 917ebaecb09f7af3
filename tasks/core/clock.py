"""The cloud's time, as one run knows it: the agent's own clock corrected by
the offset AWS's replies show (their HTTP ``Date``). Build stamps, "which
build started later" and the check that an AMI was created after its build
began are judged by it, so an agent whose clock is ten minutes off agrees
with the others and with EC2's ``CreationDate``. (Lock expiry needs no
estimate: S3 says a lock's age itself, see ``state.locks``.)

Before any reply has been seen, it is the agent's clock.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable


class Clock:
    def __init__(self, local: Callable[[], float] = time.time) -> None:
        self._local = local
        self._offset: float | None = None
        self._lock = threading.Lock()

    @property
    def offset(self) -> float:
        """Seconds the cloud is ahead of this agent (negative: behind)."""
        return self._offset or 0.0

    def observe(self, date: str | None) -> None:
        """Learn from a reply's ``Date`` header, just received. ``Date`` is
        whole seconds and the reply took time to arrive, so each reply gives
        a lower bound on the offset; the largest seen is the closest."""
        local = self._local()
        try:
            server = parsedate_to_datetime(date or "").timestamp()
        except (TypeError, ValueError, IndexError):
            return
        with self._lock:
            seen = server - local
            if self._offset is None or seen > self._offset:
                self._offset = seen

    def time(self) -> float:
        return self._local() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), timezone.utc)
