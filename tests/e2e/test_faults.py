"""Faults only a real Packer or a real process shows: an AMI the template
shares with an account amis.yaml does not allow, and a run killed with
SIGKILL, whose log must still hold what Packer printed. A stand-in Packer
waits on a FIFO; nothing here waits on a sleep."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from support.project import (FAKE_PACKER, current_ami, failed, image_setting,
                             legacy_template, ok, write_script)


def popen(project, *args, env=None):
    return subprocess.Popen([sys.executable, "-m", "doit", *args], cwd=project.path,
                            env={k: v for k, v in {**project.env, **(env or {})}.items()
                                 if v is not None},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def read_until(proc, text: str) -> str:
    """Its output up to a line holding ``text`` (or to its end)."""
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if text in line:
            break
    return "".join(seen)


SNAPSHOT_SHARER = """#!/usr/bin/env python3
# Packer 1.6.6 grants snapshot_users with CreateVolumePermission.Add, which moto
# 5.2 accepts but does not keep; this runs the real Packer, then grants the
# permission in the form moto keeps, as Packer does against AWS.
import re, subprocess, sys, boto3
done = subprocess.run(["PACKER_BIN", *sys.argv[1:]], capture_output=True, text=True)
sys.stdout.write(done.stdout)
for region, ami in re.findall(r"(\\w+-\\w+-\\d):(ami-[0-9a-f]+)", done.stdout):
    ec2 = boto3.client("ec2", region_name=region)
    for m in ec2.describe_images(ImageIds=[ami])["Images"][0]["BlockDeviceMappings"]:
        ec2.modify_snapshot_attribute(SnapshotId=m["Ebs"]["SnapshotId"], UserIds=["123456789012"],
                                      Attribute="createVolumePermission", OperationType="add")
sys.exit(done.returncode)
"""


@pytest.mark.parametrize("setting", ["ami_users", "snapshot_users"])
def test_an_ami_shared_with_an_undeclared_account_is_not_published(project, aws, setting,
                                                                   tmp_path):
    import shutil
    template = legacy_template(project, "base")
    data = json.loads(template.read_text())
    data["builders"][0][setting] = ["123456789012"]
    del data["builders"][0]["encrypt_boot"]   # Packer shares no AMI encrypted with the default key
    template.write_text(json.dumps(data, indent=2))
    refused = failed(project.doit("plan"))          # written out: named before any build
    assert f"{setting} shares with 123456789012, which share_with: in amis.yaml does not " \
        "list" in refused, refused
    data["builders"][0][setting] = ["{{ lower `123456789012` }}"]     # known only to Packer
    template.write_text(json.dumps(data, indent=2))
    if setting == "snapshot_users":
        sharer = write_script(tmp_path / "sharer", SNAPSHOT_SHARER.replace(
            "PACKER_BIN", shutil.which("packer")).replace("/usr/bin/env python3", sys.executable))
        project.env["PACKER"] = str(sharer)
    out = failed(project.doit("ami:base"))
    assert re.search(r"image base: the build shared (snapshot )?eu-west-1:\S+ with 123456789012, "
                     r"which amis.yaml does not allow \(no share_with: set\); revoked, nothing "
                     r"published", out), out
    assert "channels/main/base.json" not in aws.objects()
    image_setting(project, "base", "share_with: ['123456789012']")
    ok(project.doit("ami:base"))
    ami = current_ami(aws, "base")
    grants = aws.ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
    if setting == "ami_users":
        assert grants["LaunchPermissions"] == [{"UserId": "123456789012"}]


def test_a_killed_runs_log_holds_what_packer_printed(project, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proc = popen(project, "ami:base", env={"PACKER": str(FAKE_PACKER), "AMI_VERBOSE": "1",
                                           "FAKE_PACKER_BLOCK": str(gate)})
    read_until(proc, "fake build of base")
    logs = [p for p in (project.path / ".amis/logs").glob("base-*.log")
            if not p.name.endswith(".machine.log")]
    assert len(logs) == 1 and "fake build of base" in logs[0].read_text()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert "fake build of base" in logs[0].read_text()
    with open(gate, "w"):
        pass                                       # let the orphaned stand-in finish


