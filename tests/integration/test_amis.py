"""`doit amis` and `doit plan` in process, with the scripted Packer: what
rebuilds after which edit, reuse by digest, records in S3 (the emulator's),
and bad records as one line."""

from __future__ import annotations

import json
import os
import re
import time

from support.project import BUCKET, IMAGES, REGION, ok

ALL = sorted(IMAGES)


def built(tree) -> list[str]:
    return sorted(tree.packer_builds())


def edit(path, text="\n# changed by a test\n"):
    with open(path, "a") as f:
        f.write(text)


def _upstream_image(aws, name: str) -> str:
    """An image 'published upstream': moto owns it as account 123456789012."""
    reservation = aws.ec2.run_instances(ImageId="ami-bb9a6bc2", MinCount=1, MaxCount=1)
    return aws.ec2.create_image(InstanceId=reservation["Instances"][0]["InstanceId"],
                                Name=name)["ImageId"]


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
    assert "reused " + first["amis"][REGION] + " by digest" in result.stdout
    assert json.loads(aws.objects()["channels/main/worker.json"]) == first


def test_plan_says_what_would_rebuild_and_why(built_tree):
    edit(built_tree.path / "ansible/roles/logspout/tasks/main.yml")
    result = ok(built_tree.doit("plan"))
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "build" in rows["base"] and "ansible/roles/logspout/tasks/main.yml" in rows["base"]
    for child in ["build", "deploy", "web", "worker"]:
        assert "build" in rows[child] and "parent base builds first" in rows[child]
    assert "up to date" in rows["centos"]
    assert built(built_tree) == []


def test_plan_on_empty_bucket_says_every_image_builds(tree):
    result = ok(tree.doit("plan"))
    for image in IMAGES:
        assert re.search(rf"^{image}\s+build\s+-\s+\?\s+(never built|parent base builds first)$",
                         result.stdout, re.M), result.stdout


def test_source_filter_picks_newest_and_new_upstream_rebuilds_tree(tree, aws):
    first = _upstream_image(aws, "el9-upstream-1")
    graph = tree.path / "amis.yaml"
    text = graph.read_text()
    text = re.sub(r'owners: .*', 'owners: ["123456789012"]', text)
    text = re.sub(r'name_pattern: .*', 'name_pattern: "el9-upstream-*"', text)
    text = re.sub(r'\n\s*sandbox_ami: .*', '', text)
    graph.write_text(text)
    ok(tree.doit("amis"))
    assert json.loads(tree.record("centos").read_text())["amis"][REGION] == first
    assert built(tree) == ALL
    tree.reset_count()
    ok(tree.doit("amis"))
    assert built(tree) == []

    time.sleep(1.1)    # moto stamps CreationDate to the second
    newer = _upstream_image(aws, "el9-upstream-2")
    result = ok(tree.doit("plan"))
    assert re.search(r"^centos\s+resolve.*" + newer, result.stdout, re.M), result.stdout
    ok(tree.doit("amis"))
    assert json.loads(tree.record("centos").read_text())["amis"][REGION] == newer
    assert built(tree) == ALL


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
    assert "reused " + mine["amis"][REGION] + " by digest" in result.stdout


def test_a_corrupt_record_in_s3_stops_the_run_naming_its_key(built_tree, aws):
    before = built_tree.record("web").read_bytes()
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=b'{"image": "web"')
    result = built_tree.doit("amis")
    assert result.returncode != 0
    assert f"s3://{BUCKET}/channels/main/web.json: not valid JSON" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert built_tree.record("web").read_bytes() == before
    assert built(built_tree) == []


def test_prefix_puts_every_key_under_it(tree, aws):
    ok(tree.doit("amis", env={"AMI_PREFIX": "teams/platform/"}))
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


def test_failing_packer_changes_nothing_and_next_run_retries(built_tree, aws):
    before_s3 = aws.objects()
    before_local = built_tree.record("web").read_bytes()
    edit(built_tree.path / "ansible/roles/web_app/tasks/main.yml")
    built_tree.packer.fail["web"] = "UnauthorizedOperation: You are not authorized, sorry"
    result = built_tree.doit("amis")
    assert result.returncode != 0
    assert aws.objects() == before_s3
    assert built_tree.record("web").read_bytes() == before_local
    out = result.stdout + result.stderr
    assert "image web: Packer exited 1: UnauthorizedOperation" in out
    assert "Traceback" not in out
    log = re.search(r"log: (\S+\.log)", out).group(1)
    assert "UnauthorizedOperation" in open(log).read()
    # The next run tries again, and only web.
    del built_tree.packer.fail["web"]
    ok(built_tree.doit("amis"))
    assert built(built_tree) == ["web"]
