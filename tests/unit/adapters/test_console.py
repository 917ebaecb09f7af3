"""The console's three views, in process: a pipe, a Buildkite job log and a
terminal (a stream that says it is one, drawn by rich)."""

from __future__ import annotations

import io

import pytest

from tasks.adapters.console import Console, choose_view


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def a_build(console: Console, clock: Clock) -> None:
    """What a run tells the console of two images: web builds, worker fails."""
    console.queue(["web", "worker"])
    console.say("build: changed ansible/roles/web_app/defaults/main.yml", "web")
    console.phase("web", "validating: packer validate")
    clock.t = 8
    console.passed("web", "validated: packer validate (0:08)")
    console.phase("web", "starting Packer")
    console.detail("==> amazon-ebs.ami: Launching a source AWS instance...", "web")
    console.phase("web", "launching")
    console.say("build: never built", "worker")
    console.phase("worker", "validating: packer validate")
    clock.t = 30
    console.phase("web", "provisioning")
    console.phase("web", "tagging")
    console.done("worker", "failed", "failed")
    clock.t = 75
    console.done("web", "built", "built ami-0123456789abcdef0 in 1:15")


@pytest.mark.parametrize("stream, buildkite, term, view", [
    (io.StringIO(), False, "xterm", "plain"),
    (Terminal(), False, "xterm-256color", "live"),
    (Terminal(), False, "dumb", "plain"),
    (Terminal(), False, "", "plain"),
    (Terminal(), True, "xterm", "buildkite"),
    (io.StringIO(), True, "", "buildkite"),
])
def test_the_view_follows_where_output_goes(stream, buildkite, term, view):
    assert choose_view(stream, buildkite, term) == view


def test_a_pipe_gets_whole_lines_of_lasting_phases_and_outcomes():
    out, clock = io.StringIO(), Clock()
    a_build(Console(out, view="plain", now=clock), clock)
    assert out.getvalue().splitlines() == [
        "[web] build: changed ansible/roles/web_app/defaults/main.yml",
        "[web] validated: packer validate (0:08)",
        "[web] launching (0:08)",
        "[worker] build: never built",
        "[web] provisioning (0:30)",
        "[worker] failed",
        "[web] built ami-0123456789abcdef0 in 1:15",
    ]


def test_verbose_shows_packer_and_every_phase():
    out, clock = io.StringIO(), Clock()
    a_build(Console(out, view="plain", verbose=True, now=clock), clock)
    lines = out.getvalue().splitlines()
    assert "[web] ==> amazon-ebs.ami: Launching a source AWS instance..." in lines
    assert "[web] starting Packer (0:08)" in lines and "[web] tagging (0:30)" in lines
    assert "[web] validating: packer validate (0:00)" in lines      # each step, with -v


def test_buildkite_folds_each_image_and_opens_a_failure(tmp_path):
    out, clock = io.StringIO(), Clock()
    console = Console(out, view="buildkite", now=clock)
    a_build(console, clock)
    log = tmp_path / "worker-20261202T100000Z.log"
    log.write_text("10:00:01 ==> amazon-ebs.ami: Launching a source AWS instance...\n"
                   "10:00:09 Build 'amazon-ebs.ami' errored: UnauthorizedOperation\n")
    console.show_log("worker", log)
    console.heading("amis")
    console.say("image  ami  this run")
    lines = out.getvalue().splitlines()
    assert lines[:4] == ["--- :packer: web",
                         "[web] build: changed ansible/roles/web_app/defaults/main.yml",
                         "[web] validated: packer validate (0:08)", "[web] launching (0:08)"]
    assert lines[4:6] == ["--- :packer: worker", "[worker] build: never built"]
    # another image spoke meanwhile: web's group starts again
    assert lines[6:8] == ["--- :packer: web", "[web] provisioning (0:30)"]
    failure = lines.index("--- :packer: worker failed")
    assert lines[failure + 1] == "^^^ +++" and lines[failure + 2] == "[worker] failed"
    logged = lines.index("[worker] 10:00:09 Build 'amazon-ebs.ami' errored: UnauthorizedOperation")
    opened = max(i for i, line in enumerate(lines[:logged]) if line.startswith("--- "))
    assert lines[opened:opened + 2] == ["--- :packer: worker failed", "^^^ +++"]
    assert lines[-2:] == ["+++ :bar_chart: amis", "image  ami  this run"]


def test_a_terminal_gets_live_lines_and_keeps_only_what_matters():
    out, clock = Terminal(), Clock()
    console = Console(out, view="live", now=clock)
    console.start()
    console.queue(["web", "worker"])
    console.phase("web", "provisioning")
    clock.t = 42
    drawn = console._render()
    from rich.console import Console as Rich
    shown = io.StringIO()
    Rich(file=shown, width=80, color_system=None).print(drawn)
    rows = [line.rstrip() for line in shown.getvalue().splitlines()]
    assert any(line.startswith("› web") and "provisioning" in line and "0:42" in line
               for line in rows), rows
    assert any(line.startswith("· worker") and "queued" in line for line in rows), rows
    console.done("web", "built", "built ami-0123456789abcdef0 in 0:42")
    console.done("worker", "up to date", "")
    console.close()
    console.say("image  ami")
    text = out.getvalue()
    assert "\x1b[32m[web] built ami-0123456789abcdef0 in 0:42\x1b[0m" in text   # green
    assert text.rstrip().endswith("image  ami")                  # printed plainly after
    assert "up to date" not in text                              # an image kept: no line


def test_the_live_line_shows_the_validation_step_and_the_expected_time():
    out, clock = Terminal(), Clock()
    console = Console(out, view="live", now=clock)
    console.start()
    console.queue(["web"])
    console.expect("web", 190)
    console.phase("web", "validating: packer validate")
    clock.t = 42
    from rich.console import Console as Rich
    shown = io.StringIO()
    Rich(file=shown, width=80, color_system=None).print(console._render())
    (row,) = [line.rstrip() for line in shown.getvalue().splitlines() if line.strip()]
    assert row.startswith("› web") and "validating: packer validate" in row, row
    assert row.endswith("0:42 of ~3:10"), row
    console.close()


def test_a_passed_stage_is_a_line_in_a_log_and_nothing_on_a_terminal():
    live, plain = Terminal(), io.StringIO()
    for out, view in ((live, "live"), (plain, "plain")):
        console = Console(out, view=view)
        console.passed("web", "validated: packer validate (0:08)")
        console.close()
    assert "validated" not in live.getvalue()
    assert plain.getvalue() == "[web] validated: packer validate (0:08)\n"


def test_errors_go_to_stderr_off_a_terminal():
    out, err = io.StringIO(), io.StringIO()
    Console(out, err).error("image web: Packer exited 1")
    assert out.getvalue() == "" and err.getvalue() == "ERROR: image web: Packer exited 1\n"


class _LeftReader:
    """A pipe whose reader has gone (`doit … | head -1`)."""
    def __init__(self) -> None:
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        pass


def test_a_reader_that_leaves_does_not_stop_the_run():
    from tasks.adapters.console import Console
    out = _LeftReader()
    console = Console(out=out)
    console.say("revoked ami-00000001 (base, eu-west-1)")
    console.say("revoked ami-00000002 (web, eu-west-1)")       # not raised, not tried again
    assert out.writes == 1
