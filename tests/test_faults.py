"""Reliability under faults: no dead, shared or forged AMI published, no
secret leaked, no agent stalled, and one line instead of a traceback.

Races and failing requests are made deterministic with a fault-injecting
proxy on loopback (tests/faultproxy.py) and a stand-in Packer that waits on
a FIFO; nothing here waits on a sleep."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import (BUCKET, FAKE_PACKER, REGION, commit, failed, image_setting,
                      legacy_template, ok, print_sensitive, write_script)

FAST_LOCKS = {"AMI_LOCK_POLL_SECONDS": "0.1"}


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


def current_ami(aws, image: str, channel: str = "main") -> str:
    return json.loads(aws.objects()[f"channels/{channel}/{image}.json"])["amis"][REGION]


def exists(aws, ami: str) -> bool:
    return bool(aws.ec2.describe_images(Filters=[{"Name": "image-id", "Values": [ami]}])["Images"])


# 1 -------------------------------------------------------------------------

def test_gc_cannot_deregister_an_ami_that_a_reuse_is_making_current(project, aws, proxy):
    ok(project.doit("amis"))
    role = project.path / "ansible/roles/worker_app/defaults/main.yml"
    original = role.read_text()
    first = current_ami(aws, "worker")
    role.write_text(original + "\nworker_extra: 1\n")
    commit(project.path)
    ok(project.doit("amis"))                       # worker's first AMI is current nowhere now
    role.write_text(original)
    commit(project.path)                           # a revert: the next build reuses it
    held = proxy.hold(lambda r: r.action == "DeregisterImage" and r.form("ImageId") == first)
    gc = popen(project, "gc", "--keep", "1", "--days", "0", "--apply",
               env={"AWS_ENDPOINT_URL": proxy.url})
    assert held.arrived.wait(120), gc.communicate()[0]
    build = popen(project, "amis", env=FAST_LOCKS)
    # The reuse must wait for gc (same lock); without it, it finishes first.
    before = read_until(build, "waiting for")
    held.release.set()
    gc_out = gc.communicate(timeout=120)[0]
    out = before + build.communicate(timeout=300)[0]
    assert gc.returncode == 0 and build.returncode == 0, gc_out + out
    now = current_ami(aws, "worker")
    assert exists(aws, now), f"main/worker.json names {now}, which no longer exists:\n{out}"
    assert now != first and project.packer_builds()[-1] == "worker"


# 2 -------------------------------------------------------------------------

PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n"
       "AAAAMwAAAAtzc2gtZWQyNTUxOQAAACBQb3J0YWJsZUtleUZvclRlc3RzT25seTEyMzQ1Ng\n"
       "-----END OPENSSH PRIVATE KEY-----")


def test_every_line_of_a_multi_line_secret_is_masked(project, aws):
    print_sensitive(project, "deploy_key", "printf '%s\\n' \"{value}\"")
    result = ok(project.doit("ami:base", env={"DEPLOY_KEY": PEM}))
    logs = "".join(p.read_text() for p in (project.path / ".amis/logs").glob("base-*.log"))
    for line in PEM.splitlines():
        assert line not in result.stdout and line not in logs, line
    assert result.stdout.count("<sensitive>") >= 4


# 3 -------------------------------------------------------------------------

def test_an_untracked_input_makes_the_tree_dirty(project, aws):
    project.env.pop("AMI_ALLOW_DIRTY")
    (project.path / "ansible/roles/web_app/templates/extra.conf.j2").write_text("new\n")
    result = ok(project.doit("amis"))
    assert "the working tree has inputs git does not have at HEAD " \
           "(ansible/roles/web_app/templates/extra.conf.j2)" in result.stdout
    objects = aws.objects()
    assert "channels/main/web.json" not in objects
    assert json.loads(objects["channels/dirty/web.json"])["git"]["dirty"] is True


def test_a_committed_file_name_that_is_not_utf8_does_not_stop_provenance(tmp_path):
    from tasks.adapters.git import git_info
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=tmp_path, check=True)
    (tmp_path / os.fsdecode(b"\xff.txt")).write_text("x")
    (tmp_path / "a.txt").write_text("a")
    commit(tmp_path)
    info = git_info(tmp_path, ["a.txt", "new.txt"])
    assert info["dirty"] is True and info["untracked_inputs"] == ["new.txt"]


# 4 -------------------------------------------------------------------------

def test_a_failed_id_write_is_repaired_by_the_next_run(project, aws, proxy):
    ok(project.doit("amis"))
    (project.path / "ansible/base_ami.yaml").write_text(
        (project.path / "ansible/base_ami.yaml").read_text() + "\n# changed\n")
    proxy.fail(lambda r: r.is_s3("PUT", "channels/main/base.txt"))
    out = failed(project.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert "writing s3://test-amis/channels/main/base.txt: InternalError: injected by the " \
           "test proxy: a fault on AWS's side: run again" in out
    objects = aws.objects()
    new = json.loads(objects["channels/main/base.json"])["amis"][REGION]
    assert objects["channels/main/base.txt"].decode().strip() != new      # left behind
    result = ok(project.doit("amis"))
    assert f"[base] repaired s3://{BUCKET}/channels/main/base.txt: it now says {new}" \
        in result.stdout
    assert aws.objects()["channels/main/base.txt"].decode().strip() == new


# 5 -------------------------------------------------------------------------

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
    if setting == "snapshot_users":
        sharer = write_script(tmp_path / "sharer", SNAPSHOT_SHARER.replace(
            "PACKER_BIN", shutil.which("packer")).replace("/usr/bin/env python3", sys.executable))
        project.env["PACKER"] = str(sharer)
    out = failed(project.doit("ami:base"))
    assert re.search(r"image base: the build shared (snapshot )?eu-west-1:\S+ with 123456789012, "
                     r"which amis.yaml does not allow \(share_with: nobody\); revoked, nothing "
                     r"published", out), out
    assert "channels/main/base.json" not in aws.objects()
    image_setting(project, "base", "share_with: ['123456789012']")
    ok(project.doit("ami:base"))
    ami = current_ami(aws, "base")
    grants = aws.ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
    if setting == "ami_users":
        assert grants["LaunchPermissions"] == [{"UserId": "123456789012"}]


# 6 -------------------------------------------------------------------------

def test_an_artifact_this_build_did_not_make_is_refused(project, aws, tmp_path):
    ok(project.doit("amis"))
    (project.path / "ansible/roles/worker_app/defaults/main.yml").write_text("---\nx: 1\n")
    liar = write_script(tmp_path / "liar", """#!/bin/sh
[ "$1" = version ] && { echo "1,,version,1.6.6"; exit 0; }
for a in "$@"; do case "$a" in source_ami=*) ami="${a#source_ami=}";; esac; done
echo "1,amazon-ebs,artifact,0,id,eu-west-1:$ami"
exit 0
""")
    base = current_ami(aws, "base")
    before = aws.objects()["channels/main/worker.json"]
    out = failed(project.doit("ami:worker", env={"PACKER": str(liar)}))
    assert f"image worker: Packer named eu-west-1:{base}, which this build did not make " \
           "(tags Image='base'" in out
    assert aws.objects()["channels/main/worker.json"] == before


# 7 -------------------------------------------------------------------------

@pytest.mark.parametrize("cleans_up", [True, False])
def test_a_hung_packer_is_stopped_after_the_build_timeout(project, tmp_path, cleans_up):
    on_term = ("trap 'echo \"1,,ui,say,Cleanly cancelled builds after being interrupted.\"; "
               "exit 1' TERM") if cleans_up else "trap '' TERM"
    hung = write_script(tmp_path / "hung", """#!/bin/sh
[ "$1" = version ] && { echo "1,,version,1.6.6"; exit 0; }
ON_TERM
echo "1,,ui,say,==> amazon-ebs: hanging"
while :; do sleep 0.1; done
""".replace("ON_TERM", on_term))
    image_setting(project, "base", "build_timeout: 2s")
    started = time.monotonic()
    # A Packer that cleans up gets the time to; one that ignores SIGTERM is killed.
    cleanup = "30" if cleans_up else "1"
    out = failed(project.doit("ami:base", env={"PACKER": str(hung),
                                               "AMI_CLEANUP_SECONDS": cleanup}))
    assert time.monotonic() - started < 60
    assert "image base: Packer ran longer than its build_timeout (2 s) and was cancelled" in out
    if cleans_up:
        assert "Cleanly cancelled builds after being interrupted." in out
    assert not project.record("base").exists()


# 8 -------------------------------------------------------------------------

def test_a_lock_release_is_retried_and_a_failed_one_is_a_warning(project, aws, proxy):
    deletes = proxy.fail(lambda r: r.method == "DELETE" and "/locks/" in r.path, times=3)
    result = ok(project.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert deletes.hits == 3 and "could not release" not in result.stdout
    assert not [k for k in aws.objects() if k.startswith("locks/")]
    proxy.fail(lambda r: r.method == "DELETE" and "/locks/" in r.path)
    (project.path / "ansible/base_ami.yaml").write_text(
        (project.path / "ansible/base_ami.yaml").read_text() + "\n# again\n")
    result = ok(project.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url}))
    assert "[base] warning: could not release the lock locks/base/" in result.stdout
    assert "[base] built ami-" in result.stdout


def test_packers_failure_is_the_error_even_when_the_release_fails(project, proxy, tmp_path):
    failing = write_script(tmp_path / "failing", """#!/bin/sh
[ "$1" = version ] && { echo "1,,version,1.6.6"; exit 0; }
echo "1,amazon-ebs,error,UnauthorizedOperation: not allowed"
exit 1
""")
    proxy.fail(lambda r: r.method == "DELETE" and "/locks/" in r.path)
    out = failed(project.doit("ami:base", env={"AWS_ENDPOINT_URL": proxy.url,
                                               "PACKER": str(failing)}))
    assert "image base: Packer exited 1: UnauthorizedOperation: not allowed" in out


# 9 -------------------------------------------------------------------------

def test_a_killed_runs_log_holds_what_packer_printed(project, tmp_path):
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proc = popen(project, "ami:base", env={"PACKER": str(FAKE_PACKER),
                                           "FAKE_PACKER_BLOCK": str(gate)})
    read_until(proc, "fake build of base")
    logs = list((project.path / ".amis/logs").glob("base-*.log"))
    assert len(logs) == 1 and "fake build of base" in logs[0].read_text()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert "fake build of base" in logs[0].read_text()
    with open(gate, "w"):
        pass                                       # let the orphaned stand-in finish


# 10 ------------------------------------------------------------------------

def test_refreshing_goes_on_after_a_failed_refresh(project, aws, proxy, tmp_path):
    """One failed renewal must not let another agent take over and build again."""
    ok(project.doit("ami:centos"))
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    renewals = lambda r: r.method == "PUT" and "/locks/" in r.path and "If-Match" in r.headers
    failing = proxy.fail(renewals)
    env = {"PACKER": str(FAKE_PACKER), "FAKE_PACKER_COUNT": str(tmp_path / "count"),
           "AMI_LOCK_TTL_SECONDS": "3", **FAST_LOCKS}
    agent_a = popen(project, "ami:base", env={**env, "AWS_ENDPOINT_URL": proxy.url,
                                              "FAKE_PACKER_BLOCK": str(gate)})
    seen_a = read_until(agent_a, "could not renew the lock")
    assert "could not renew the lock" in seen_a, seen_a
    proxy.rules.remove(failing)                    # one renewal failed; the next ones pass
    deadline = time.monotonic() + 60
    while proxy.count(renewals) - failing.hits < 2:
        assert agent_a.poll() is None and time.monotonic() < deadline, "renewals stopped"
        time.sleep(0.05)                           # waits for renewals the proxy sees
    agent_b = popen(project.clone(tmp_path / "agent-b"), "ami:base", env=env)
    waited = read_until(agent_b, "waiting for")
    assert "waiting for" in waited
    with open(gate, "w"):
        pass
    out_a = seen_a + agent_a.communicate(timeout=120)[0]
    out_b = waited + agent_b.communicate(timeout=120)[0]
    assert agent_a.returncode == 0 and agent_b.returncode == 0, out_a + out_b
    assert (tmp_path / "count").read_text().split() == ["base"], out_b


def test_a_build_that_lost_its_lock_does_not_replace_a_newer_one(project, aws, proxy, tmp_path):
    ok(project.doit("ami:centos"))
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    proxy.fail(lambda r: r.method == "PUT" and "/locks/" in r.path and "If-Match" in r.headers)
    env = {"PACKER": str(FAKE_PACKER), "AMI_LOCK_TTL_SECONDS": "2", **FAST_LOCKS}
    agent_a = popen(project, "ami:base", env={**env, "AWS_ENDPOINT_URL": proxy.url,
                                              "FAKE_PACKER_BLOCK": str(gate)})
    read_until(agent_a, "fake build of base")
    agent_b = popen(project.clone(tmp_path / "agent-b"), "ami:base", env=env)
    out_b = agent_b.communicate(timeout=120)[0]      # takes over once A's lock expires
    assert agent_b.returncode == 0 and "took over the lock" in out_b, out_b
    newer = current_ami(aws, "base")
    with open(gate, "w"):
        pass
    out_a = agent_a.communicate(timeout=120)[0]
    assert current_ami(aws, "base") == newer, out_a
    assert re.search(r"\[base\] a build that started later \(" + newer + r", commit \w+\) is "
                     r"current; left it so", out_a), out_a


# 11-13 -----------------------------------------------------------------------

def test_a_fifo_among_the_inputs_is_one_line_not_a_hang(project):
    os.mkfifo(project.path / "ansible/roles/web_app/files-pipe")
    for task in ("plan", "amis"):
        done = project.doit(task, timeout=60)
        out = failed(done)
        assert "ansible/roles/web_app/files-pipe: not a regular file (a FIFO, socket or " \
               "device): inputs must be regular files: remove it" in out


@pytest.mark.parametrize("field, value", [("build_finished", 12345), ("parent", "base"),
                                          ("inputs", ["x"]), ("git", "main")])
def test_a_record_with_a_wrong_type_is_one_line(project, aws, field, value):
    ok(project.doit("amis"))
    record = json.loads(aws.objects()["channels/main/web.json"])
    record[field] = value
    body = json.dumps(record).encode()
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=body)
    aws.s3.put_object(Bucket=BUCKET, Key=f"digests/web/{record['digest']}.json", Body=body)
    for args in (("amis",), ("plan",), ("explain", "-a", record["amis"][REGION])):
        out = failed(project.doit(*args))
        assert re.search(rf"s3://{BUCKET}/(channels/main|digests/web)/\S+\.json: key "
                         rf"'{field}' ", out), (args, out)


def test_a_read_only_records_folder_is_one_line(project):
    records = project.path / ".amis/records"
    records.mkdir(parents=True)
    subprocess.run(["chattr", "+i", str(records)], check=True)
    try:
        out = failed(project.doit("amis"))
    finally:
        subprocess.run(["chattr", "-i", str(records)], check=True)
    assert re.search(r"\.amis/records: cannot write \(Operation not permitted\)", out), out


def test_the_state_folder_deleted_mid_run_is_survived(project, tmp_path):
    """`rm -rf .amis` in another terminal while base builds: base fails (its
    stage is gone), nothing else breaks, and the next run builds."""
    wiper = write_script(tmp_path / "wiper", f"""#!/bin/sh
[ "$1" = version ] && exec "{FAKE_PACKER}" "$@"
rm -rf "{project.path}/.amis"
printf '%s\\n' '1,amazon-ebs,error,open template: no such file or directory'
exit 1
""")
    out = failed(project.doit("amis", env={"PACKER": str(wiper)}))
    assert "image base: Packer exited 1: open template: no such file or directory" in out
    ok(project.doit("amis", env={"PACKER": str(FAKE_PACKER)}))


# also ----------------------------------------------------------------------

def test_promote_all_checks_every_image_before_moving_any(project, aws):
    ok(project.doit("amis"))
    subprocess.run(["git", "checkout", "-q", "-b", "partial"], cwd=project.path, check=True)
    (project.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    commit(project.path)
    ok(project.doit("ami:web"))                     # the channel has centos, base, web only
    before = {k: v for k, v in aws.objects().items() if k.startswith("channels/main/")}
    out = failed(project.doit("promote", "-i", "all", "-f", "partial", "-t", "main"))
    assert "channel partial has no record of build" in out
    assert {k: v for k, v in aws.objects().items() if k.startswith("channels/main/")} == before


def test_two_promotions_in_one_second_keep_two_notes(project, aws):
    ok(project.doit("amis"))
    for _ in range(2):
        ok(project.doit("promote", "-i", "web", "-f", "main", "-t", "staging"))
    assert len([k for k in aws.objects() if k.startswith("promotions/web/")]) == 2


def test_an_oversized_record_is_refused(project, aws):
    ok(project.doit("amis"))
    record = json.loads(aws.objects()["channels/main/web.json"])
    record["inputs"] = {f"f{i:07d}": "0" * 64 for i in range(70_000)}    # about 5 MB
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=json.dumps(record))
    out = failed(project.doit("amis"))
    assert re.search(r"s3://test-amis/channels/main/web.json: \d+ bytes, more than a record "
                     r"may hold \(4194304\)", out), out


def test_a_huge_output_line_is_cut(project, tmp_path):
    loud = write_script(tmp_path / "loud", f"""#!/bin/sh
[ "$1" = version ] && exec "{FAKE_PACKER}" "$@"
head -c 50000000 /dev/zero | tr '\\0' 'x'; echo
exec "{FAKE_PACKER}" "$@"
""")
    ok(project.doit("ami:base", env={"PACKER": str(loud)}))
    log = next((project.path / ".amis/logs").glob("base-*.log")).read_text()
    assert "[line cut at 65536 bytes]" in log and len(log) < 200_000


def test_a_multi_line_packer_error_shows_its_detail(project, tmp_path):
    failing = write_script(tmp_path / "failing", """#!/bin/sh
[ "$1" = version ] && { echo "1,,version,1.6.6"; exit 0; }
printf '%s\\n' '1,,error,1 error(s) occurred:\\n\\n* ami_regions: invalid region xx-fake-1'
exit 1
""")
    out = failed(project.doit("ami:base", env={"PACKER": str(failing)}))
    assert "image base: Packer exited 1: ami_regions: invalid region xx-fake-1" in out


@pytest.mark.parametrize("value", ["eu-west-1\\n", "ami-12345678\\n"])
def test_a_trailing_newline_is_not_part_of_an_id(tmp_path, value):
    from tasks.core.errors import AmiError
    from tasks.core.records import Record
    record = {"image": "web", "region": "eu-west-1", "digest": "a" * 64,
              "amis": {"eu-west-1": "ami-12345678"}}
    if value.startswith("ami-"):
        record["amis"] = {"eu-west-1": value.replace("\\n", "\n")}
    else:
        record["region"] = record["amis"] = None
        record.update(region="eu-west-1\n", amis={"eu-west-1\n": "ami-12345678"})
    with pytest.raises(AmiError):
        Record.from_json(json.dumps(record), "s3://b/k")


def test_a_no_op_lists_the_channel_and_fetches_nothing(project, aws, proxy):
    """A warm no-op: the bucket check and one listing of the channel, no GET
    however many images; a fresh clone GETs each record once, nothing else."""
    ok(project.doit("amis"))
    s3 = lambda method, get_object: lambda r: (                     # noqa: E731
        r.method == method and r.path.startswith(f"/{BUCKET}")
        and (r.path.count("/") > 1) == get_object)
    via = {"AWS_ENDPOINT_URL": proxy.url}
    ok(project.doit("amis", env=via))
    assert proxy.count(s3("GET", True)) == 0
    assert proxy.count(s3("GET", False)) == 2           # the bucket check, the channel
    assert proxy.count(lambda r: r.action == "DescribeImages") == 1
    proxy.seen.clear()
    project.reset_count()
    clone = project.clone(project.path.parent / "fresh")
    ok(clone.doit("amis", env=via))
    assert proxy.count(s3("GET", True)) == 6            # centos and five images, once each
    assert proxy.count(s3("GET", False)) == 2
    assert clone.packer_builds() == []
