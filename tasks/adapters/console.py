"""What a person sees while images build, in one of three views:

- ``live`` (a terminal): one line per building image with its phase and
  elapsed time, redrawn in place by ``rich``; messages scroll above it;
- ``plain`` (a pipe, a file): messages and each phase change, one whole
  line each, prefixed by the image's name;
- ``buildkite`` (a Buildkite job log): the plain lines in Buildkite's log
  groups (``--- :packer: web``), a failed image's group
  opened with ``^^^ +++``, the final table under ``+++``.

Packer's own output (``detail``) goes to the image's log; it is shown live
only when ``verbose``. Everything is written under one lock, to the
process's real stdout (doit swaps ``sys.stdout`` per Python action, which
is not safe across threads); errors go to the real stderr, except in the
live view, where the terminal is one.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Callable, TextIO

from ..core.outcome import Outcome

VIEWS = ("plain", "live", "buildkite")

# Phases an image goes through, in order, as the live view shows them.
QUEUED, VALIDATING, BUILDING, TESTING = "queued", "validating", "starting Packer", "testing"
# The phases a plain log names (the live view shows every one): those that last.
# Validation's steps are one line when it has passed (:meth:`Console.passed`),
# each step's own line only with -v.
LASTING = ("launching", "provisioning", "creating AMI", "copying to")
_DONE_STYLES = MappingProxyType({
    Outcome.BUILT: "green", Outcome.REUSED: "cyan", Outcome.UP_TO_DATE: "dim",
    Outcome.RESOLVED: "green", Outcome.FAILED: "bold red", Outcome.INTERRUPTED: "yellow",
    Outcome.SKIPPED: "yellow"})


def choose_view(stream: TextIO, buildkite: bool, term: str) -> str:
    """Buildkite's log under Buildkite, the live view on a terminal, else plain."""
    if buildkite:
        return "buildkite"
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return "live" if tty and term not in ("", "dumb") else "plain"


def elapsed(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


@dataclass
class _Row:
    phase: str
    since: float                    # when the image started (monotonic)
    done: bool = False
    took: float = 0.0
    expected: float | None = None   # what its last build took (plan's expectation)


@dataclass
class Console:
    out: TextIO | None = None              # None: the process's real stdout
    err: TextIO | None = None              # None: the process's real stderr
    view: str = "plain"
    verbose: bool = False
    now: Callable[[], float] = time.monotonic
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _rows: dict[str, _Row] = field(default_factory=dict, repr=False)
    _group: str | None = field(default=None, repr=False)     # Buildkite's open group
    _live: object = field(default=None, repr=False)
    _gone: bool = field(default=False, repr=False)           # stdout's reader has left

    def __post_init__(self) -> None:
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}")

    def width(self) -> int | None:
        """A terminal's width, for tables to fit it; None when piped (a log
        keeps every character)."""
        if self.view != "live":
            return None
        import shutil
        return shutil.get_terminal_size().columns

    # -- what the run says ----------------------------------------------------

    def say(self, text: str, image: str | None = None) -> None:
        """A message: always shown."""
        with self._lock:
            self._lines(text.splitlines() or [""], image)

    def error(self, text: str) -> None:
        """A failure, one line, on stderr (above the live lines on a terminal)."""
        with self._lock:
            if self._live is not None:
                self._print(f"[bold red]ERROR:[/] {_escape(text)}", markup=True)
            else:
                stream = self.err or sys.__stderr__
                stream.write(f"ERROR: {text}\n")
                stream.flush()

    def detail(self, text: str, image: str) -> None:
        """A line of Packer's output: in the image's log; here only when verbose."""
        if self.verbose:
            with self._lock:
                self._lines(text.splitlines(), image)

    def queue(self, images: list[str]) -> None:
        """Images that will build once their parents have."""
        with self._lock:
            for image in images:
                self._rows.setdefault(image, _Row(QUEUED, self.now()))
            self._refresh()

    def phase(self, image: str, phase: str) -> None:
        """Image ``image`` is now doing ``phase`` (validating, launching, ...)."""
        with self._lock:
            row = self._rows.get(image)
            if row is None or row.phase == QUEUED:
                expected = row.expected if row is not None else None
                self._rows[image] = row = _Row(phase, self.now(), expected=expected)
            elif row.phase == phase:
                return
            row.phase = phase
            if self.view == "live":
                self._refresh()
            elif self.verbose or phase.startswith(LASTING):
                self._lines([f"{phase} ({elapsed(self.now() - row.since)})"], image)

    def passed(self, image: str, text: str) -> None:
        """A stage that passed, whose steps the live line showed as they ran:
        one line in a log (piped), nothing more on a terminal."""
        if self.view != "live":
            with self._lock:
                self._lines([text], image)

    def expect(self, image: str, seconds: float | None) -> None:
        """Image ``image`` is expected to take ``seconds`` (its last build's
        time): the live line shows its time against it."""
        with self._lock:
            row = self._rows.setdefault(image, _Row(QUEUED, self.now()))
            row.expected = seconds

    def done(self, image: str, outcome: Outcome, text: str) -> None:
        """Image ``image`` ended ``outcome`` (built, reused, failed, ...): ``text``
        says how, and is shown in every view (nothing when it is empty)."""
        with self._lock:
            row = self._rows.get(image)
            if row is not None:
                row.done, row.took, row.phase = True, self.now() - row.since, outcome
            if self.view == "buildkite" and outcome == Outcome.FAILED:
                self._open(image, failed=True)
            if not text:
                self._refresh()
            elif self.view == "live":
                from rich.text import Text
                self._print(Text(f"[{image}] {text}", style=_DONE_STYLES.get(outcome, "")))
                self._refresh()
            else:
                self._lines([text], image)

    def show_log(self, image: str, log: Path) -> None:
        """A failed build's log in full, where its failure was said."""
        try:
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return
        with self._lock:
            if self.view == "buildkite":
                self._open(image, failed=True)
            self._lines([f"--- {log.name} ---"] + lines + [f"--- end of {log.name} ---"],
                        image)

    def heading(self, text: str) -> None:
        """The run's closing output follows (the table): its own section."""
        with self._lock:
            self.close()
            if self.view == "buildkite":
                self._write(f"+++ :bar_chart: {text}\n")
                self._group = ""

    def start(self) -> None:
        """Begin the live lines (the live view only)."""
        with self._lock:
            if self.view != "live" or self._live is not None:
                return
            from rich.console import Console as RichConsole
            from rich.live import Live
            terminal = RichConsole(file=self.out or sys.__stdout__, highlight=False)
            self._live = Live(self._render(), console=terminal, refresh_per_second=4,
                              transient=True, redirect_stdout=False, redirect_stderr=False,
                              get_renderable=self._render)
            self._live.start()

    def close(self) -> None:
        """End the live lines; what follows is printed plainly."""
        with self._lock:
            live, self._live = self._live, None
            if live is not None:
                live.stop()

    # -- drawing --------------------------------------------------------------

    def _render(self) -> object:
        from rich.table import Table
        from rich.text import Text
        grid = Table.grid(padding=(0, 2))
        with self._lock:
            rows = [(name, row) for name, row in self._rows.items() if not row.done]
            now = self.now()
        for name, row in rows:
            spinner = "·" if row.phase == QUEUED else "›"
            took = "" if row.phase == QUEUED else elapsed(now - row.since)
            if took and row.expected:
                took += f" of ~{elapsed(row.expected)}"
            grid.add_row(Text(f"{spinner} {name}", style="bold"),
                         Text(row.phase, style="dim" if row.phase == QUEUED else "yellow"),
                         Text(took, style="dim"))
        return grid

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.refresh()

    def _print(self, text: object, *, markup: bool = False) -> None:
        if self._live is not None:
            self._live.console.print(text, markup=markup, highlight=False, soft_wrap=True)
        else:
            self._write(f"{text}\n")

    def _lines(self, lines: list[str], image: str | None) -> None:
        if self.view == "buildkite" and image is not None and self._group != image:
            self._open(image)
        prefix = f"[{image}] " if image else ""
        if self._live is not None:
            for line in lines:
                self._print(prefix + line)
            return
        self._write("".join(f"{prefix}{line}\n" for line in lines))

    def _open(self, image: str, failed: bool = False) -> None:
        """Buildkite: start image's group (again, when another image spoke
        meanwhile); a failure's group is opened for the reader."""
        if failed:
            if self._group != f"{image}!":
                self._write(f"--- :packer: {image} failed\n^^^ +++\n")
                self._group = f"{image}!"
            return
        if self._group not in (image, f"{image}!"):
            self._write(f"--- :packer: {image}\n")
            self._group = image

    def _write(self, text: str) -> None:
        if self._gone:
            return
        stream = self.out or sys.__stdout__
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            # The reader left (`doit revoke … | head`): the run goes on to its
            # end unheard rather than stop halfway; errors still go to stderr.
            self._gone = True
            if self.out is None:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())      # so exit's flush cannot fail either


def _escape(text: str) -> str:
    from rich.markup import escape
    return escape(text)
