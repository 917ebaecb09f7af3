"""Running Packer and reading its machine-readable output.

A build succeeds when Packer exits 0, reports no ``error`` lines and names
an artifact. Words like "Error" in provisioner output mean nothing here.
"""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from .errors import AmiError
from .graph import AMI_RE, REGION_RE

# AWS failures that go away when tried again later; anything else fails at once.
TRANSIENT_ERRORS = ("RequestLimitExceeded", "Throttling", "InsufficientInstanceCapacity",
                    "ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure",
                    "RequestTimeout", "ResourceNotReady", "exceeded wait attempts")
MASK = "<sensitive>"
_INSTANCE_ID = re.compile(r"Instance ID: (i-[0-9a-f]{8,17})\b")
CLEANUP_TIMEOUT = 300   # seconds Packer may take to clean up after an interrupt
MAX_LINE = 64 * 1024    # bytes of one output line kept

@dataclass(frozen=True)
class Line:
    timestamp: str
    target: str
    type: str
    data: tuple[str, ...]


def unescape(field_: str) -> str:
    return (field_.replace("%!(PACKER_COMMA)", ",")
                  .replace("\\n", "\n").replace("\\r", "\r"))


def parse_line(raw: str) -> Line | None:
    """One machine-readable line, or None for anything else Packer printed."""
    parts = raw.rstrip("\r\n").split(",")
    if len(parts) < 3 or not parts[0].isdigit() or not parts[2]:
        return None
    return Line(parts[0], parts[1], parts[2], tuple(unescape(p) for p in parts[3:]))


def parse_artifact_ids(value: str) -> dict[str, str]:
    """``eu-west-1:ami-1,us-east-1:ami-2`` (already unescaped) -> region: AMI id."""
    ids: dict[str, str] = {}
    for item in value.split(","):
        region, sep, ami = item.strip().partition(":")
        if sep and REGION_RE.fullmatch(region) and AMI_RE.fullmatch(ami):
            ids[region] = ami
    return ids


@dataclass
class Result:
    exit_code: int
    amis: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    timed_out: float | None = None      # the time limit it ran into, in seconds

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.errors and bool(self.amis)

    @property
    def transient(self) -> bool:
        """Failed for a reason AWS may not give next time (capacity, throttling)."""
        return not self.ok and any(t in e for e in self.errors for t in TRANSIENT_ERRORS)

    def reason(self) -> str:
        if self.timed_out is not None:
            why = f"Packer ran longer than its build_timeout ({self.timed_out:.0f} s) and was " \
                  f"cancelled (exit {self.exit_code})"
        elif self.exit_code != 0:
            why = f"Packer exited {self.exit_code}"
        elif self.errors:
            why = "Packer reported errors"
        else:
            why = "Packer reported no AMI artifact"
        if self.errors:
            why += ": " + error_summary(self.errors[-1])
        return why


def error_summary(error: str) -> str:
    """The telling line of a Packer error: "1 error(s) occurred:" says nothing,
    the "* ..." lines under it do."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    details = [line.lstrip("* ").strip() for line in lines[1:] if line.startswith("*")]
    if re.match(r"\d+ error\(s\) occurred:?$", lines[0]) and details:
        return "; ".join(details[:3])
    return lines[0]


def backoff(attempt: int, base: float, cap: float = 600.0) -> float:
    """Seconds before retry number ``attempt`` (0-based): exponential, jittered."""
    return min(cap, base * 2 ** attempt) * random.uniform(0.5, 1.0)


MASK_LINE_MIN = 8     # lines of a multi-line secret at least this long are masked on their own


class Masker:
    """Replaces secret values in raw machine-readable text, in every form
    Packer may print them (commas and newlines are escaped there). Packer
    prints a provisioner's output line by line, so each line of a multi-line
    secret (a PEM key) is masked on its own too."""

    def __init__(self, secrets: list[str]) -> None:
        forms = set()
        for secret in secrets:
            parts = [secret]
            if "\n" in secret.strip("\n"):
                parts += [line.strip("\r") for line in secret.splitlines()
                          if len(line.strip()) >= MASK_LINE_MIN]
            for part in parts:
                forms |= {part, part.replace(",", "%!(PACKER_COMMA)").replace("\n", "\\n")}
        self.forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, MASK)
        return text


class Output:
    """Collects a build's result from machine-readable lines as they come."""

    def __init__(self) -> None:
        self.amis: dict[str, str] = {}
        self.errors: list[str] = []
        self.instance: str | None = None       # the build instance, once launched

    def readable(self, raw: str) -> list[str]:
        """Feed one raw line; return what a person should see of it."""
        line = parse_line(raw)
        if line is None:
            text = raw.rstrip("\r\n")
            return [text] if text.strip() else []
        if line.type == "ui" and len(line.data) >= 2:
            found = _INSTANCE_ID.search(line.data[1])
            if found and self.instance is None:
                self.instance = found.group(1)
            return [t for t in line.data[1].splitlines() if t.strip()]
        if line.type == "error" and line.data:
            self.errors.append(line.data[0])
        elif line.type == "artifact" and len(line.data) >= 3 and line.data[1] == "id":
            self.amis.update(parse_artifact_ids(line.data[2]))
        return []


def build_variables(image: str, region: str, playbook: str | None, *, source_ami: str,
                    parent_image: str, digest: str, git: dict[str, Any], build_time: str,
                    packer_version: str) -> dict[str, str]:
    """The variables the tree offers every template (each gets those it declares)."""
    return {"image": image, "region": region, **({"playbook": playbook} if playbook else {}),
            "source_ami": source_ami, "parent_image": parent_image, "digest": digest,
            "branch": str(git["branch"]), "commit": str(git["commit"]),
            "dirty": str(bool(git["dirty"])).lower(),
            "build_url": str(git.get("build_url") or ""), "build_time": build_time,
            "packer_version": packer_version}


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


class Packers:
    """The Packer processes of one run, and what Ctrl-C and SIGTERM do to them.

    Each Packer runs in a session of its own, so a signal reaches it once
    and only from here (Packer ignores SIGINT sent to its PID alone; SIGTERM
    to its PID cancels the build cleanly)."""

    def __init__(self, cleanup_timeout: float = CLEANUP_TIMEOUT) -> None:
        self.cleanup_timeout = cleanup_timeout
        self._running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._interrupted = threading.Event()

    def interrupted(self) -> bool:
        return self._interrupted.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep, but wake at once on Ctrl-C / SIGTERM. True if interrupted."""
        return self._interrupted.wait(seconds)

    def install_signal_handlers(self) -> None:
        """Only the main thread may; doit defines tasks there."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, self._on_signal)
            signal.signal(signal.SIGTERM, self._on_signal)

    def _kill_all(self) -> None:
        with self._lock:
            for proc in self._running:
                proc.kill()

    def _on_signal(self, signum: int, _frame: object) -> None:
        """First Ctrl-C or SIGTERM (what Buildkite sends on cancel): ask every
        running Packer to cancel, exactly once, by SIGTERM to its PID; Packer then
        removes its instance, key pair and security group and exits 1. A second
        Ctrl-C stops at once."""
        if self._interrupted.is_set():
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self._interrupted.set()
        sys.__stderr__.write(f"{signal.Signals(signum).name}: asking Packer to cancel and clean "
                             f"up (up to {self.cleanup_timeout:.0f} s); nothing will be "
                             "recorded. Press Ctrl-C again to stop at once.\n")
        with self._lock:
            for proc in self._running:
                proc.send_signal(signal.SIGTERM)
        timer = threading.Timer(self.cleanup_timeout, self._kill_all)
        timer.daemon = True
        timer.start()

    def run(self, argv: list[str], env: dict[str, str], cwd: Path, log: Path,
            echo: Callable[[str], None], mask: Callable[[str], str] = lambda t: t,
            on_instance: Callable[[str], None] | None = None,
            timeout: float | None = None) -> Result:
        """Run Packer, keep its whole output in ``log`` (written line by line),
        echo it readably. ``on_instance`` is called once with the build
        instance's id as soon as Packer names it; if it fails, the build is
        cancelled and its error raised. After ``timeout`` seconds the build is
        cancelled like a Ctrl-C: SIGTERM, time to clean up, then SIGKILL.
        """
        if self.interrupted():
            raise AmiError("interrupted: not starting Packer")
        out = Output()
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            log_file = log.open("w", encoding="utf-8")
        except OSError as err:
            raise AmiError(f"{log}: cannot write the build log ({err.strerror}): check the "
                           "folder's permissions") from None
        with log_file:
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
                for raw_bytes in _lines(proc.stdout):
                    raw = mask(raw_bytes.decode("utf-8", errors="replace"))
                    log_file.write(raw)
                    log_file.flush()
                    for text in out.readable(raw):
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
        if self.interrupted():
            raise AmiError(f"interrupted: Packer cancelled the build (exit {code}); nothing "
                           f"recorded; log: {log}")
        return Result(exit_code=code, amis=out.amis, errors=out.errors,
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
