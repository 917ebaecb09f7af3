"""The Packer runner, in process, on small stand-in programs: its log is
written line by line and cut at the line limit, a build past its time limit
is cancelled (SIGTERM, time to clean up, then SIGKILL), Ctrl-C cancels every
running build once, and the instance hook runs as soon as Packer names it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from support.project import write_script
from tasks.adapters.packer import MAX_LINE, Packers
from tasks.adapters.signals import Interrupts
from tasks.core.errors import AmiError


def runner(cleanup: float = 30) -> Packers:
    return Packers(Interrupts(), cleanup)


def run(packers: Packers, script, tmp_path, **kwargs):
    echoed: list[str] = []
    result = packers.run([str(script)], {"PATH": "/usr/bin:/bin"}, tmp_path,
                         tmp_path / "logs" / "base.log", echoed.append, **kwargs)
    return result, echoed


@pytest.mark.parametrize("cleans_up", [True, False])
def test_a_hung_packer_is_stopped_after_the_build_timeout(tmp_path, cleans_up):
    on_term = ("trap 'echo \"1,,ui,say,Cleanly cancelled builds after being interrupted.\"; "
               "exit 1' TERM") if cleans_up else "trap '' TERM"
    hung = write_script(tmp_path / "hung", """#!/bin/sh
ON_TERM
echo "1,,ui,say,==> amazon-ebs: hanging"
while :; do sleep 0.1; done
""".replace("ON_TERM", on_term))
    # A Packer that cleans up gets the time to; one that ignores SIGTERM is killed.
    started = time.monotonic()
    result, echoed = run(runner(30 if cleans_up else 1), hung, tmp_path, timeout=1)
    assert time.monotonic() - started < 30
    assert not result.ok and result.timed_out == 1
    assert result.reason().startswith("Packer ran longer than its build_timeout (1 s) and was "
                                      "cancelled")
    assert ("Cleanly cancelled builds after being interrupted." in echoed) is cleans_up


def test_the_log_is_readable_and_the_machine_stream_is_kept_beside_it(tmp_path):
    """base.log holds what a person reads (Packer's UTC time, the text,
    commas and newlines decoded); base.machine.log the stream as it came."""
    build = write_script(tmp_path / "build", """#!/bin/sh
echo "1764669600,,ui,say,==> amazon-ebs.ami: Launching a source AWS instance..."
echo "1764669605,amazon-ebs.ami,ui,message,    amazon-ebs.ami: Instance ID: i-0123456789abcdef0"
printf '%s\\n' '1764669630,,ui,say,==> amazon-ebs.ami: Provisioning with Ansible%!(PACKER_COMMA) one\\ntwo'
echo "1764669690,amazon-ebs.ami,artifact,0,id,eu-west-1:ami-12345678"
""")
    result, echoed = run(runner(), build, tmp_path, header=["build base: never built"])
    assert result.ok
    lines = (tmp_path / "logs/base.log").read_text().splitlines()
    assert lines[0].endswith(" build base: never built")
    assert lines[1:] == ["10:00:00 ==> amazon-ebs.ami: Launching a source AWS instance...",
                         "10:00:05     amazon-ebs.ami: Instance ID: i-0123456789abcdef0",
                         "10:00:30 ==> amazon-ebs.ami: Provisioning with Ansible, one",
                         "10:00:30 two"]
    raw = (tmp_path / "logs/base.machine.log").read_text().splitlines()
    assert len(raw) == 4 and raw[3] == "1764669690,amazon-ebs.ami,artifact,0,id,eu-west-1:ami-12345678"
    assert echoed[0] == "==> amazon-ebs.ami: Launching a source AWS instance..."


def test_a_huge_output_line_is_cut(tmp_path):
    loud = write_script(tmp_path / "loud", """#!/bin/sh
head -c 50000000 /dev/zero | tr '\\0' 'x'; echo
echo "1,amazon-ebs,artifact,0,id,eu-west-1:ami-12345678"
""")
    result, _ = run(runner(), loud, tmp_path)
    log = (tmp_path / "logs/base.log").read_text()
    assert f"[line cut at {MAX_LINE} bytes]" in log and len(log) < 200_000
    assert result.ok and result.amis == {"eu-west-1": "ami-12345678"}


def test_the_log_holds_each_line_as_it_comes(tmp_path):
    gate = tmp_path / "gate"
    slow = write_script(tmp_path / "slow", f"""#!/bin/sh
echo "1,,ui,say,==> amazon-ebs: first"
read _ < "{gate}"
echo "1,amazon-ebs,artifact,0,id,eu-west-1:ami-12345678"
""")
    import os
    os.mkfifo(gate)
    packers = runner()
    done: list = []
    worker = threading.Thread(target=lambda: done.append(run(packers, slow, tmp_path)))
    worker.start()
    log = tmp_path / "logs/base.log"
    deadline = time.monotonic() + 30
    while "first" not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline, "the first line never reached the log"
        time.sleep(0.01)
    with open(gate, "w") as f:
        f.write("go\n")
    worker.join(30)
    assert done and done[0][0].ok


def test_ctrl_c_cancels_every_running_build_once(tmp_path):
    counts = tmp_path / "terms"
    waiting = write_script(tmp_path / "waiting", f"""#!/bin/sh
trap 'echo term >> "{counts}"; echo "1,,ui,say,Cleanly cancelled builds after being interrupted."; exit 1' TERM
echo "1,,ui,say,==> amazon-ebs: waiting"
while :; do sleep 0.05; done
""")
    interrupts = Interrupts()
    packers = Packers(interrupts, 30)
    errors: list[str] = []

    def build(n: int) -> None:
        try:
            packers.run([str(waiting)], {"PATH": "/usr/bin:/bin"}, tmp_path,
                        tmp_path / "logs" / f"b{n}.log", lambda _: None)
        except AmiError as err:
            errors.append(str(err))

    workers = [threading.Thread(target=build, args=(n,)) for n in range(2)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 30
    while sum(1 for n in range(2) if (tmp_path / f"logs/b{n}.log").exists()
              and "waiting" in (tmp_path / f"logs/b{n}.log").read_text()) < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    interrupts.interrupt("SIGINT")
    for w in workers:
        w.join(30)
    assert counts.read_text().split() == ["term", "term"]
    assert len(errors) == 2 and all(e.startswith("interrupted: the build was stopped")
                                    for e in errors)
    with pytest.raises(AmiError, match="interrupted: not starting Packer"):
        packers.run([str(waiting)], {}, tmp_path, tmp_path / "logs/b3.log", lambda _: None)


def test_the_instance_hook_runs_once_and_its_failure_cancels_the_build(tmp_path):
    names = write_script(tmp_path / "names", """#!/bin/sh
trap 'echo "1,,ui,say,Cleanly cancelled builds after being interrupted."; exit 1' TERM
echo "1,,ui,say,==> amazon-ebs: Instance ID: i-0123456789abcdef0"
echo "1,,ui,say,==> amazon-ebs: Instance ID: i-0123456789abcdef0"
while :; do sleep 0.05; done
""")
    seen: list[str] = []

    def hook(instance: str) -> None:
        seen.append(instance)
        raise AmiError("requiring IMDSv2 failed")

    with pytest.raises(AmiError, match="requiring IMDSv2 failed"):
        run(runner(), names, tmp_path, on_instance=hook)
    assert seen == ["i-0123456789abcdef0"]


def test_packer_that_cannot_start_is_one_line(tmp_path):
    with pytest.raises(AmiError, match="cannot run .*check PACKER or your Packer install"):
        run(runner(), tmp_path / "no-such-packer", tmp_path)


def test_the_version_is_asked_once(tmp_path):
    calls = tmp_path / "calls"
    fake = write_script(tmp_path / "packer", f"""#!/bin/sh
echo x >> "{calls}"
echo "1,,version,1.6.6"
""")
    packers = Packers(Interrupts(), 30, str(fake), {"PATH": "/usr/bin:/bin"})
    assert packers.version() == packers.version() == "1.6.6"
    assert calls.read_text().split() == ["x"]
    missing = Packers(Interrupts(), 30, "no-such-packer", {"PATH": str(tmp_path / "empty")})
    with pytest.raises(AmiError, match="Packer executable 'no-such-packer' not found"):
        missing.executable()


def test_a_log_that_cannot_be_written_cancels_packer_cleanly(tmp_path):
    """A full disk under .amis mid-build (/dev/full answers every write with
    ENOSPC): Packer is cancelled as by Ctrl-C, cleans up, and the run ends in
    one line, not a traceback."""
    cleaned = tmp_path / "cleaned-up"
    building = write_script(tmp_path / "building", f"""#!/bin/sh
trap 'echo "1,,ui,say,==> amazon-ebs: Terminating the source AWS instance..."; touch "{cleaned}"; exit 1' TERM
echo "1,,ui,say,==> amazon-ebs: Launching a source AWS instance..."
while :; do sleep 0.1; done
""")
    echoed: list[str] = []
    log = tmp_path / "logs" / "base.log"
    log.parent.mkdir()
    log.symlink_to("/dev/full")
    with pytest.raises(AmiError) as info:
        runner().run([str(building)], {"PATH": "/usr/bin:/bin"}, tmp_path, log, echoed.append)
    message = str(info.value)
    assert "\n" not in message and message.startswith(
        f"{log}: cannot write the build log (No space left on device): Packer was cancelled "
        "and cleaned up; nothing recorded")
    assert cleaned.exists()
    assert "==> amazon-ebs: Terminating the source AWS instance..." in echoed


def test_the_version_a_run_found_is_known_to_the_next_without_running_packer(tmp_path):
    known = tmp_path / "packer-version.json"
    first = Packers(Interrupts(), 5, "packer", {}, known)
    assert first.known_version() is None                     # no run has asked yet
    found = first.version()
    assert found.startswith("1.") and Packers(Interrupts(), 5, "packer", {}, known) \
        .known_version() == found
    other = tmp_path / "packer"                              # another binary: not known
    other.write_bytes(Path(first.executable()).read_bytes()[:64])
    other.chmod(0o755)
    assert Packers(Interrupts(), 5, str(other), {}, known).known_version() is None
