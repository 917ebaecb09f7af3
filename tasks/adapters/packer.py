"""Running Packer: one process per build, in a session of its own, so a
signal reaches it once and only from here (Packer ignores SIGINT sent to
its PID alone; SIGTERM to its PID cancels the build cleanly and Packer
then removes its instance, key pair and security group)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Protocol, Sequence

from ..core.errors import AmiError, FAILED, INTERRUPTED
from ..core.files import write_atomic
from ..core.once import Once
from .packer_output import Output, Result, machine_log, parse_line, stamped
from .signals import Interrupts
from .tools import packer_executable, with_tools

MAX_LINE = 64 * 1024    # bytes of one output line kept


def version(packer: str, env: dict[str, str]) -> str:
    try:
        out = subprocess.run([packer, "version", "-machine-readable"], env=env,
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AmiError(f"cannot run {packer!r} ({err}): check PACKER or your Packer install") from None
    for raw in out.splitlines():
        line = parse_line(raw)
        if line and line.type == "version" and line.data:
            return line.data[0]
    return "unknown"


class PackerRunner(Protocol):
    """What a build asks of Packer: ``Packers`` runs the real one,
    ``fakes.ScriptedPacker`` stands in for it."""

    def executable(self) -> str: ...

    def version(self) -> str: ...

    def known_version(self) -> str | None: ...

    def run(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
            echo: Callable[[str], None], mask: Callable[[str], str] = lambda t: t,
            on_instance: Callable[[str], None] | None = None,
            timeout: float | None = None, header: Sequence[str] = ()) -> Result: ...


def remember(known: Path, env: Mapping[str, str]) -> None:
    """Ask the installed Packer its version once and keep it in ``known``,
    for runs that may not run a program while doit defines their tasks
    (``./doit`` calls this when ``known`` is missing)."""
    try:
        Packers(Interrupts(), 0, env.get("PACKER", "").strip() or "packer", env, known).version()
    except AmiError:
        pass                            # no Packer yet: the run itself says so


class Packers:
    """The Packer processes of one run: ``packer`` (a name on PATH or a
    path), asked for its version once. On Ctrl-C or SIGTERM each running
    build gets SIGTERM, exactly once, and ``cleanup_timeout`` seconds to
    clean up before it is killed."""

    def __init__(self, interrupts: Interrupts, cleanup_timeout: float, packer: str = "packer",
                 env: Mapping[str, str] | None = None, known: Path | None = None) -> None:
        self.interrupts = interrupts
        self.cleanup_timeout = cleanup_timeout
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._executable = Once(lambda: packer_executable(packer, env or {}))
        self._version = Once(lambda: self._remembered(version(self.executable(),
                                                              with_tools(env or {}))))
        self._known = known         # the version a run found, for the next without a program
        interrupts.listen(self._cancel_all)

    def executable(self) -> str:
        return self._executable()

    def version(self) -> str:
        """The installed Packer's version, asked once per run."""
        return self._version()

    def known_version(self) -> str | None:
        """The version an earlier run found for this same Packer binary,
        without running it (None: not known)."""
        if self._known is None:
            return None
        try:
            kept = json.loads(self._known.read_text(encoding="utf-8"))
            return kept["version"] if kept["binary"] == self._binary() else None
        except (OSError, ValueError, KeyError, TypeError, AmiError):
            return None

    def _binary(self) -> list:
        exe = self.executable()
        st = os.stat(exe)
        return [exe, st.st_size, st.st_mtime_ns]

    def _remembered(self, found: str) -> str:
        if self._known is not None and found != "unknown":
            try:
                self._known.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self._known, json.dumps({"binary": self._binary(),
                                                      "version": found}).encode(),
                             durable=False)
            except OSError:
                pass                            # only a shortcut for the next run
        return found

    def _kill_all(self) -> None:
        with self._lock:
            for proc in self._running:
                proc.kill()

    def _cancel_all(self) -> None:
        with self._lock:
            if self._running:
                sys.__stderr__.write(f"asking Packer to cancel and clean up (up to "
                                     f"{self.cleanup_timeout:.0f} s); nothing will be recorded\n")
            for proc in self._running:
                proc.send_signal(signal.SIGTERM)
        timer = threading.Timer(self.cleanup_timeout, self._kill_all)
        timer.daemon = True
        timer.start()

    def run(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
            echo: Callable[[str], None], mask: Callable[[str], str] = lambda t: t,
            on_instance: Callable[[str], None] | None = None,
            timeout: float | None = None, header: Sequence[str] = ()) -> Result:
        """Run Packer, keep its output readably in ``log`` (after the
        ``header`` lines) and as it came in ``machine_log(log)``, both written
        line by line, and ``echo`` each readable line. ``on_instance`` is called once with the build
        instance's id as soon as Packer names it; if it fails, the build is
        cancelled and its error raised. After ``timeout`` seconds the build is
        cancelled like a Ctrl-C: SIGTERM, time to clean up, then SIGKILL.
        """
        if self.interrupts.interrupted():
            raise AmiError("interrupted: not starting Packer", code=INTERRUPTED)
        out = Output()
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log_file = log.open("w", encoding="utf-8")
            raw_file = machine_log(log).open("w", encoding="utf-8")
            log_file.write("".join(stamped("", line) for line in header))
            log_file.flush()
        except OSError as err:
            raise AmiError(f"{log}: cannot write the build log ({err.strerror}): check the "
                           "folder's permissions", code=FAILED) from None
        with _closing(log_file), _closing(raw_file):
            try:
                with self._lock:
                    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
                    self._running.add(proc)
            except OSError as err:
                raise AmiError(f"cannot run {argv[0]!r} ({err}): check PACKER or your Packer install") from None
            expired = threading.Event()
            watchdog = threading.Timer(timeout, self._expire, (proc, expired)) \
                if timeout else None
            if watchdog:
                watchdog.daemon = True
                watchdog.start()
            try:
                assert proc.stdout is not None
                hook_error: AmiError | None = None
                pending: list[str] = []
                for raw_bytes in _lines(proc.stdout):
                    raw = mask(raw_bytes.decode("utf-8", errors="replace"))
                    texts = out.readable(raw)
                    if hook_error is None:
                        parsed = parse_line(raw)
                        pending += [stamped(parsed.timestamp if parsed else "", t) for t in texts]
                        try:
                            raw_file.write(raw)
                            raw_file.flush()
                            log_file.write("".join(pending))
                            log_file.flush()
                            pending = []
                        except OSError as err:
                            # A full disk (or a folder gone): cancel Packer the way Ctrl-C
                            # does, so it cleans up, and keep reading until it has.
                            hook_error = AmiError(
                                f"{log}: cannot write the build log ({err.strerror}): Packer "
                                "was cancelled and cleaned up; nothing recorded: free space "
                                f"under {log.parent} and run again", code=FAILED)
                            echo(f"cannot write the build log ({err.strerror}): cancelling "
                                 "the build")
                            proc.send_signal(signal.SIGTERM)
                    for text in texts:
                        echo(text)
                    if on_instance and out.instance and hook_error is None:
                        try:
                            on_instance(out.instance)
                        except AmiError as err:
                            hook_error = err
                            echo(f"{err}: cancelling the build")
                            proc.send_signal(signal.SIGTERM)
                        on_instance = None
                code = proc.wait()
                if hook_error:
                    raise hook_error
            finally:
                if watchdog:
                    watchdog.cancel()
                with self._lock:
                    self._running.discard(proc)
        if self.interrupts.interrupted():
            raise AmiError(f"interrupted: the build was stopped and Packer cleaned up; nothing "
                           f"recorded; log: {log}", code=INTERRUPTED)
        return Result(exit_code=code, amis=out.amis, errors=out.errors, builds=out.builds,
                      timed_out=timeout if expired.is_set() else None)

    def _expire(self, proc: subprocess.Popen, expired: threading.Event) -> None:
        """The build's time is up: cancel it as Ctrl-C would, then kill it."""
        expired.set()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(self.cleanup_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def _closing(log_file: Any) -> Iterator[Any]:
    """Close the log; a close that cannot flush (a full disk) was already said."""
    try:
        yield log_file
    finally:
        try:
            log_file.close()
        except OSError:
            pass


def _lines(stream: Any) -> Iterator[bytes]:
    """Lines of output, each cut at MAX_LINE bytes: one huge line must not
    take the memory of the run."""
    cut = False
    while True:
        chunk = stream.readline(MAX_LINE)
        if not chunk:
            return
        if cut:                                   # the rest of a line already cut
            cut = not chunk.endswith(b"\n")
            continue
        if len(chunk) >= MAX_LINE and not chunk.endswith(b"\n"):
            cut = True
            chunk += f" [line cut at {MAX_LINE} bytes]\n".encode()
        yield chunk
