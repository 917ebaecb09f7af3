"""Act only on what is proven, end to end with the real Packer against the
emulator: two teams' registries in one account, and gc never deletes the
other team's AMIs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support.project import BUCKET, IMAGES, REGION, Project, copy_project, ok, sandbox_env


def team(tmp_path: Path, aws, counting_packer, name: str, bucket: str, prefix: str) -> Project:
    script, runs = counting_packer
    env = sandbox_env(tmp_path / name, aws.url, script)
    env.update({"AMI_BUCKET": bucket, "AMI_PREFIX": prefix})
    return Project(copy_project(tmp_path / name / "repo"), env, tmp_path / f"{name}-runs")


def current(aws, bucket: str, prefix: str, image: str) -> str:
    body = aws.s3.get_object(Bucket=bucket, Key=f"{prefix}/channels/main/{image}.json")["Body"]
    return json.loads(body.read())["amis"][REGION]


def exists(aws, ami: str) -> bool:
    return bool(aws.ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "image-id", "Values": [ami]}])["Images"])


@pytest.mark.parametrize("buckets", [("test-amis", "test-amis"), ("test-amis", "other-amis")],
                         ids=["one bucket, two prefixes", "two buckets"])
def test_gc_in_a_shared_account_deletes_only_its_own_registrys_amis(
        tmp_path, aws, counting_packer, buckets):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = team(tmp_path, aws, counting_packer, "a", buckets[0], "teams/a")
    b = team(tmp_path, aws, counting_packer, "b", buckets[1], "teams/b")
    ok(b.doit("amis"))
    theirs = {image: current(aws, buckets[1], "teams/b", image) for image in IMAGES}
    ok(a.doit("amis"))
    first = current(aws, buckets[0], "teams/a", "web")
    a.write("ansible/roles/web_app/defaults/main.yml",
            (a.path / "ansible/roles/web_app/defaults/main.yml").read_text() + "\nteam_a: 2\n")
    ok(a.doit("amis"))                              # a second web: the first is old now

    collected = ok(a.doit("gc", "--keep", "1", "--days", "0", "--apply"))
    assert all(exists(aws, ami) for ami in theirs.values()), collected.stdout
    for image, ami in theirs.items():
        assert re.search(rf"^{image}\s+\S+\s+{ami}\s.*keep\s+built for registry "
                         rf"s3://{buckets[1]}/teams/b/, not this one", collected.stdout, re.M), \
            collected.stdout
    assert not exists(aws, first), collected.stdout          # its own old web went
    b.reset_count()
    plan = ok(b.doit("plan")).stdout
    assert "nothing to build" in plan and "no longer exists" not in plan, plan
