"""End to end: doit as a subprocess, the real Packer, moto_server on loopback."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from conftest import BUCKET, FAKE_PACKER, IMAGES, REGION, legacy_template, ok, write_script
from tasks.adapters import emulator

ALL = sorted(IMAGES)


def built(project) -> list[str]:
    return sorted(project.packer_builds())



def edit(path, text="\n# changed by a test\n"):
    with open(path, "a") as f:
        f.write(text)


@pytest.fixture
def built_tree(project):
    ok(project.doit("amis"))
    assert built(project) == ALL
    project.reset_count()
    return project


def test_first_run_builds_every_image_and_publishes_records(project, aws):
    result = ok(project.doit("amis"))
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


def test_objects_are_private_and_encrypted(built_tree, aws):
    for key in aws.objects():
        head = aws.s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "AES256", key
        grants = aws.s3.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
        assert all("URI" not in g["Grantee"] for g in grants), f"{key} is shared: {grants}"


def test_second_run_builds_nothing(built_tree):
    result = ok(built_tree.doit("amis"))
    assert built(built_tree) == []
    assert "up to date" in result.stdout


def test_fresh_clone_builds_nothing(built_tree, tmp_path):
    clone = built_tree.clone(tmp_path / "clone")
    assert not (clone.path / ".amis").exists()
    result = ok(clone.doit("amis"))
    assert built(clone) == []
    for image in IMAGES:
        assert re.search(rf"^{image}\s+ami-\w+\s+reused", result.stdout, re.M), result.stdout


def test_touching_every_file_builds_nothing(built_tree):
    later = time.time() + 10
    for dirpath, _, files in os.walk(built_tree.path):
        if ".git" in dirpath or ".amis" in dirpath:
            continue
        for f in files:
            os.utime(os.path.join(dirpath, f), (later, later))
    ok(built_tree.doit("amis"))
    assert built(built_tree) == []


def test_role_used_only_by_web_rebuilds_only_web(built_tree, aws):
    before = json.loads(built_tree.record("web").read_text())
    edit(built_tree.path / "ansible/roles/web_app/tasks/main.yml")
    ok(built_tree.doit("amis"))
    assert built(built_tree) == ["web"]
    after = json.loads(aws.objects()["channels/main/web.json"])
    assert after["amis"][REGION] != before["amis"][REGION]
    assert after["digest"] != before["digest"]


def test_base_playbook_change_rebuilds_base_and_every_child(built_tree):
    edit(built_tree.path / "ansible/base_ami.yaml")
    ok(built_tree.doit("amis"))
    assert built(built_tree) == ALL


def test_inputs_equal_to_an_earlier_build_reuse_its_ami(built_tree, aws):
    """Content-addressed records: going back to earlier inputs (another
    branch, a revert) finds the AMI built for them, without Packer."""
    role = built_tree.path / "ansible/roles/worker_app/defaults/main.yml"
    original = role.read_text()
    first = json.loads(built_tree.record("worker").read_text())
    role.write_text(original + "\nworker_extra: 1\n")
    ok(built_tree.doit("amis"))
    assert built(built_tree) == ["worker"]
    role.write_text(original)
    built_tree.reset_count()
    result = ok(built_tree.doit("amis"))
    assert built(built_tree) == []
    assert "reusing " + first["amis"][REGION] in result.stdout
    assert json.loads(aws.objects()["channels/main/worker.json"]) == first


def test_failing_packer_changes_nothing_and_next_run_retries(built_tree, aws, tmp_path):
    before_s3 = aws.objects()
    before_local = built_tree.record("web").read_bytes()
    edit(built_tree.path / "ansible/roles/web_app/tasks/main.yml")
    failing = write_script(tmp_path / "failing-packer", """#!/bin/sh
[ "$1" = version ] && { echo "1,,version,1.6.6"; exit 0; }
echo "1,,ui,say,==> amazon-ebs: Launching a source AWS instance..."
echo "1,amazon-ebs,error,UnauthorizedOperation: You are not authorized%!(PACKER_COMMA) sorry"
echo "1,,error-count,1"
exit 1
""")
    result = built_tree.doit("amis", env={"PACKER": str(failing)})
    assert result.returncode != 0
    assert aws.objects() == before_s3
    assert built_tree.record("web").read_bytes() == before_local
    out = result.stdout + result.stderr
    assert "image web: Packer exited 1: UnauthorizedOperation" in out
    assert "Traceback" not in out
    log = re.search(r"log: (\S+\.log)", out).group(1)
    assert "UnauthorizedOperation" in open(log).read()
    # The next run tries again, with the real Packer, and only web.
    ok(built_tree.doit("amis"))
    assert built(built_tree) == ["web"]


def test_error_word_in_provisioner_output_is_not_a_failure(built_tree, tmp_path):
    """The Make approach greps for 'Error'; we go by exit code and error lines."""
    template = legacy_template(built_tree, "worker")
    data = json.loads(template.read_text())
    data["provisioners"].append({"type": "shell-local", "inline": [
        "echo 'Installing libgpg-error-1.42: Error: none, errored: 0'"]})
    template.write_text(json.dumps(data, indent=2))
    result = ok(built_tree.doit("amis"))
    assert built(built_tree) == ["worker"]
    assert "[worker]     amazon-ebs: Installing libgpg-error-1.42: Error: none, errored: 0" in result.stdout


def test_parallel_build_prefixes_every_line(project):
    result = ok(project.doit("-n", "4", "-P", "thread", "amis"))
    assert built(project) == ALL
    packer_lines = [l for l in result.stdout.splitlines() if "amazon-ebs" in l]
    assert packer_lines
    for line in packer_lines:
        assert re.match(r"^\[(base|build|deploy|web|worker)\] ", line), line


def test_plan_says_what_would_rebuild_and_why(built_tree):
    edit(built_tree.path / "ansible/roles/logspout/tasks/main.yml")
    result = ok(built_tree.doit("plan"))
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "would rebuild" in rows["base"] and "ansible/roles/logspout/tasks/main.yml" in rows["base"]
    for child in ["build", "deploy", "web", "worker"]:
        assert "would rebuild" in rows[child] and "parent base builds first" in rows[child]
    assert "up to date" in rows["centos"]
    assert built(built_tree) == []


def test_plan_on_empty_bucket_says_missing(project):
    result = ok(project.doit("plan"))
    for image in IMAGES:
        assert re.search(rf"^{image}\s+missing", result.stdout, re.M), result.stdout


def _upstream_image(aws, name: str) -> str:
    """An image 'published upstream': moto owns it as account 123456789012."""
    reservation = aws.ec2.run_instances(ImageId="ami-bb9a6bc2", MinCount=1, MaxCount=1)
    return aws.ec2.create_image(InstanceId=reservation["Instances"][0]["InstanceId"],
                                Name=name)["ImageId"]


def test_source_filter_picks_newest_and_new_upstream_rebuilds_tree(project, aws):
    first = _upstream_image(aws, "el9-upstream-1")
    graph = project.path / "amis.yaml"
    text = graph.read_text()
    text = re.sub(r'owners: .*', 'owners: ["123456789012"]', text)
    text = re.sub(r'name_pattern: .*', 'name_pattern: "el9-upstream-*"', text)
    text = re.sub(r'\n\s*sandbox_ami: .*', '', text)
    graph.write_text(text)
    ok(project.doit("amis"))
    assert json.loads(project.record("centos").read_text())["amis"][REGION] == first
    assert built(project) == ALL
    project.reset_count()
    ok(project.doit("amis"))
    assert built(project) == []

    time.sleep(1.1)    # moto stamps CreationDate to the second
    newer = _upstream_image(aws, "el9-upstream-2")
    result = ok(project.doit("plan"))
    assert re.search(r"^centos\s+would resolve.*" + newer, result.stdout, re.M), result.stdout
    ok(project.doit("amis"))
    assert json.loads(project.record("centos").read_text())["amis"][REGION] == newer
    assert built(project) == ALL


def test_a_pulled_record_for_other_inputs_is_not_taken_as_ours(built_tree, tmp_path):
    """Agent B's doit database says web is up to date, but the pull brought
    agent A's record for other inputs: B must notice and use the AMI that
    matches its own inputs (found by digest), without Packer."""
    agent_b = built_tree.clone(tmp_path / "agent-b")
    ok(agent_b.doit("amis"))
    mine = json.loads(agent_b.record("web").read_text())
    edit(built_tree.path / "ansible/roles/web_app/tasks/main.yml")
    ok(built_tree.doit("amis"))                     # agent A publishes a new web
    assert built(built_tree) == ["web"]
    built_tree.reset_count()
    result = ok(agent_b.doit("amis"))
    assert built(agent_b) == []
    assert json.loads(agent_b.record("web").read_text())["digest"] == mine["digest"]
    assert "reusing " + mine["amis"][REGION] in result.stdout


def test_a_corrupt_record_in_s3_stops_the_run_naming_its_key(built_tree, aws):
    before = built_tree.record("web").read_bytes()
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=b'{"image": "web"')
    result = built_tree.doit("amis")
    assert result.returncode != 0
    assert f"s3://{BUCKET}/channels/main/web.json: not valid JSON" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert built_tree.record("web").read_bytes() == before
    assert built(built_tree) == []


def test_sandbox_starts_its_own_emulator_and_reuses_it(tmp_path, counting_packer):
    from conftest import Project, base_env, copy_project

    env = base_env(tmp_path)
    env.update({"AMI_SANDBOX": "1", "PACKER": str(counting_packer[0])})
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


def test_prefix_puts_every_key_under_it(project, aws):
    ok(project.doit("amis", env={"AMI_PREFIX": "teams/platform/"}))
    keys = list(aws.objects())
    assert keys and all(k.startswith("teams/platform/") for k in keys)
    assert "teams/platform/channels/main/web.txt" in keys


def test_a_current_record_deleted_from_s3_is_restored_from_its_digest_copy(built_tree, aws):
    web = built_tree.record("web").read_bytes()
    aws.s3.delete_object(Bucket=BUCKET, Key="channels/main/web.json")
    ok(built_tree.doit("amis"))
    assert built(built_tree) == []
    assert aws.objects()["channels/main/web.json"] == web
    assert built_tree.record("web").read_bytes() == web


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
    proc = subprocess.Popen([sys.executable, "-m", "doit", "amis"], cwd=project.path,
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
    assert proc.returncode not in (0, None), out
    assert time.monotonic() - started < 60, "Packer did not stop"
    assert "Cleanly cancelled builds after being interrupted" in out
    assert "interrupted: Packer cancelled the build" in out
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
