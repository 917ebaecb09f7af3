"""Ctrl-C and SIGTERM (what Buildkite sends on cancel) for one run.

The first one sets :meth:`Interrupts.interrupted` and tells every listener
(the Packer runner cancels its builds); waits end at once. A second Ctrl-C
stops at once. Only the main thread may install the handlers.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Callable


class Interrupts:
    def __init__(self) -> None:
        self._event = threading.Event()
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def interrupted(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep, but wake at once on Ctrl-C / SIGTERM. True if interrupted."""
        return self._event.wait(seconds)

    def listen(self, callback: Callable[[], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def install(self) -> None:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)

    def interrupt(self, name: str = "SIGINT") -> None:
        """What the first signal does (also for tests)."""
        self._event.set()
        # On a terminal, clear the live line first, so the message is a line of its own.
        clear = "\r\x1b[K" if sys.__stderr__.isatty() else ""
        sys.__stderr__.write(f"{clear}{name}: stopping (press Ctrl-C again to stop at once)\n")
        with self._lock:
            listeners = list(self._listeners)
        for callback in listeners:
            callback()

    def _on_signal(self, signum: int, _frame: object) -> None:
        if self._event.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.interrupt(signal.Signals(signum).name)
