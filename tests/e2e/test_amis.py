"""End to end: doit as a subprocess, the real Packer, moto_server on loopback."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from support.project import FAKE_PACKER, IMAGES, REGION, legacy_template, ok
from tasks.adapters import emulator

ALL = sorted(IMAGES)


def built(project) -> list[str]:
    return sorted(project.packer_builds())


def test_first_run_builds_and_publishes_every_image_then_nothing_rebuilds(project, aws, tmp_path):
    """The headline, with the real Packer: the first run builds every image
    at once, siblings in parallel with each line prefixed, and publishes
    each record; the second run and a fresh clone build nothing; Packer is
    judged by its exit code, not by the word "Error" in its output."""
    result = ok(project.doit("amis", "-n", "4", "-P", "thread", "-v"))    # -v: Packer's output
    assert built(project) == ALL
    objects = aws.objects()
    for image in ["centos", *IMAGES]:
        record = json.loads(objects[f"channels/main/{image}.json"])
        assert record["image"] == image
        ami = record["amis"][REGION]
        assert objects[f"channels/main/{image}.txt"].decode().strip() == ami
        assert objects[f"digests/{image}/{record['digest']}.json"] == objects[f"channels/main/{image}.json"]
        assert json.loads(project.record(image).read_text()) == record
        assert re.search(rf"^{image}\s+{ami}\s+(built|resolved)", result.stdout, re.M)
    web = json.loads(objects["channels/main/web.json"])
    base = json.loads(objects["channels/main/base.json"])
    assert set(web["amis"]) == {"eu-west-1", "us-east-1"}
    assert web["parent"] == {"image": "base", "ami": base["amis"][REGION]}
    assert web["packer_version"] == "1.6.6"
    assert web["git"]["branch"] == "main" and len(web["git"]["commit"]) == 40
    assert (project.path / ".amis" / "logs" / web["build_log"]).is_file()
    # Every published AMI exists in EC2, with its digest tag.
    images = aws.ec2.describe_images(ImageIds=[web["amis"][REGION]])["Images"]
    assert {t["Key"]: t["Value"] for t in images[0]["Tags"]}["Digest"] == web["digest"]
    packer_lines = [line for line in result.stdout.splitlines() if "amazon-ebs" in line]
    assert packer_lines
    for line in packer_lines:
        assert re.match(r"^\[(base|build|deploy|web|worker)\] ", line), line

    project.reset_count()
    second = ok(project.doit("amis"))
    assert built(project) == [] and "up to date" in second.stdout

    clone = project.clone(tmp_path / "clone")
    assert not (clone.path / ".amis").exists()
    fresh = ok(clone.doit("amis"))
    assert built(clone) == []
    for image in IMAGES:
        assert re.search(rf"^{image}\s+ami-\w+\s+up to date", fresh.stdout, re.M), fresh.stdout

    # The Make approach greps for 'Error'; we go by exit code and error lines.
    template = legacy_template(project, "worker")
    data = json.loads(template.read_text())
    data["provisioners"].append({"type": "shell-local", "inline": [
        "echo 'Installing libgpg-error-1.42: Error: none, errored: 0'"]})
    template.write_text(json.dumps(data, indent=2))
    again = ok(project.doit("amis"))
    assert built(project) == ["worker"]
    assert "[worker] built ami-" in again.stdout
    log = json.loads(project.record("worker").read_text())["build_log"]
    assert "     amazon-ebs: Installing libgpg-error-1.42: Error: none, errored: 0" \
        in (project.path / ".amis/logs" / log).read_text()


def test_sandbox_starts_its_own_emulator_and_reuses_it(tmp_path, counting_packer):
    from support.project import Project, base_env, copy_project

    env = base_env(tmp_path)
    # The emulator's lifecycle is the point here; validation has tests of its own.
    env.update({"AMI_SANDBOX": "1", "PACKER": str(counting_packer[0]), "AMI_SKIP_VALIDATE": "1"})
    project = Project(copy_project(tmp_path / "repo"), env, counting_packer[1])
    try:
        result = ok(project.doit())                 # the default task is amis
        assert built(project) == ALL
        info = json.loads((project.path / ".amis/emulator.json").read_text())
        assert re.search(r"pulled channel main from s3://amis-sandbox/", result.stdout)
        project.reset_count()
        ok(project.doit())
        assert built(project) == []
        assert json.loads((project.path / ".amis/emulator.json").read_text()) == info
    finally:
        stop = project.doit("sandbox_stop")
    assert "stopped the sandbox emulator" in stop.stdout
    assert not emulator.alive(info["pid"]) and not emulator.listening(info["port"])


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_interrupt_mid_build_cleans_up_and_records_nothing(project, aws, how):
    """Ctrl-C at a terminal (SIGINT to doit's process group) or Buildkite's
    cancel (SIGTERM to doit): Packer is asked to cancel, removes its
    instance, and nothing is recorded."""
    import signal
    import subprocess
    import sys

    template = legacy_template(project, "base")
    data = json.loads(template.read_text())
    # Packer lets a running shell-local script finish before it cancels.
    data["provisioners"].append({"type": "shell-local", "inline": ["sleep 4"]})
    template.write_text(json.dumps(data, indent=2))
    proc = subprocess.Popen([sys.executable, "-m", "doit", "amis", "-v"], cwd=project.path,
                            env=project.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "Running local shell script" in line:
            break
    running = aws.ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running"]}])
    assert sum(len(r["Instances"]) for r in running["Reservations"]) == 1
    started = time.monotonic()
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 130, out                  # interrupted (docs/reference/exit-codes.md)
    assert time.monotonic() - started < 60, "Packer did not stop"
    assert "Cleanly cancelled builds after being interrupted" in out
    assert "interrupted: the build was stopped" in out
    assert "Traceback" not in out
    running = aws.ec2.describe_instances(
        Filters=[{"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    assert running["Reservations"] == [] or all(not r["Instances"] for r in running["Reservations"])
    assert [k for k in aws.ec2.describe_key_pairs()["KeyPairs"] if k["KeyName"].startswith("packer_")] == []
    assert [k for k in aws.objects() if "base" in k] == []
    tagged = aws.ec2.describe_images(Owners=["self"],
                                     Filters=[{"Name": "tag:Image", "Values": ["base"]}])
    assert tagged["Images"] == []
    assert not project.record("base").exists()
    assert project.packer_builds() == ["base"]      # no child was started


def _intervals(times_file):
    spans: dict[str, list[float]] = {}
    for line in times_file.read_text().splitlines():
        image, _, stamp = line.split()
        spans.setdefault(image, []).append(float(stamp))
    return spans


def _overlapping(spans, names) -> int:
    pairs = [(a, b) for a in names for b in names if a < b]
    return sum(1 for a, b in pairs if spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1])


@pytest.mark.parametrize("args, parallel", [
    (["amis", "-n", "4", "-P", "thread"], True),    # as the issue writes it
    (["-n", "1", "amis"], False),                    # doit's own option order
])
def test_siblings_build_at_once_only_when_asked(project, tmp_path, args, parallel):
    times = tmp_path / "times"
    fake = FAKE_PACKER
    ok(project.doit(*args, env={"PACKER": str(fake), "FAKE_PACKER_TIMES": str(times)}))
    spans = _intervals(times)
    children = ["build", "deploy", "web", "worker"]
    assert all(spans[c][0] >= spans["base"][1] for c in children)     # parent first
    if parallel:
        assert _overlapping(spans, children) >= 3
    else:
        assert _overlapping(spans, children) == 0
