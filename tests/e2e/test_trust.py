"""Act only on what is proven, end to end with the real Packer against the
emulator: two teams' registries in one account, and gc never deletes the
other team's AMIs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
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


SIGNED = {"AMI_SIGNING_KEY": "alias/amis-sandbox", "AMI_SSM_PREFIX": "/amis"}


def test_a_forged_ami_under_signing_is_neither_kept_nor_repaired_into_txt_or_ssm(project, aws):
    """An attacker with the bucket and ec2:CreateTags makes an AMI, gives it
    web's tags (its Provenance tag too), copies web's envelope under it and
    rewrites main's record, .txt and SSM parameter to name it."""
    ok(project.doit("amis", env=SIGNED))
    record = json.loads(aws.objects()["channels/main/web.json"])
    real = record["amis"][REGION]
    instance = aws.ec2.run_instances(ImageId="ami-03cf127a", MinCount=1, MaxCount=1,
                                     InstanceType="t3.micro")["Instances"][0]["InstanceId"]
    forged = aws.ec2.create_image(InstanceId=instance, Name="forged")["ImageId"]
    tags = aws.ec2.describe_images(ImageIds=[real])["Images"][0]["Tags"]
    aws.ec2.create_tags(Resources=[forged], Tags=tags)
    envelope = f"digests/web/{record['digest']}.{real}.dsse.json"
    aws.s3.copy_object(Bucket=BUCKET, Key=envelope.replace(real, forged),
                       CopySource={"Bucket": BUCKET, "Key": envelope})
    bad = {**record, "amis": {**record["amis"], REGION: forged}}
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=json.dumps(bad))
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.txt", Body=b"ami-00000000\n")

    done = ok(project.doit("amis", env=SIGNED))
    assert f"repaired s3://{BUCKET}/channels/main/web.txt" not in done.stdout
    now = json.loads(aws.objects()["channels/main/web.json"])["amis"][REGION]
    assert now == real, done.stdout                          # the genuine AMI, reused by digest
    assert aws.objects()["channels/main/web.txt"].decode().strip() == real
    ssm = boto3.client("ssm", endpoint_url=aws.url, region_name=REGION,
                       aws_access_key_id="test", aws_secret_access_key="test")
    assert ssm.get_parameter(Name="/amis/main/web")["Parameter"]["Value"] == real
    assert re.search(rf"\[web\] reused {real} by digest", done.stdout), done.stdout


def test_a_file_at_the_signing_keys_alias_path_is_not_a_key(project, aws):
    """A branch that commits alias/amis-sandbox with its own public key does
    not choose the key doit verify trusts: AMI_SIGNING_KEY names KMS."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    ok(project.doit("amis", env=SIGNED))
    planted = project.path / "alias/amis-sandbox"
    planted.parent.mkdir()
    planted.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    verified = ok(project.doit("verify", "-i", "web", "--worktree", env=SIGNED))
    assert verified.stdout.count("signature ok") == 2, verified.stdout


def test_revoking_a_parents_copy_in_a_second_region_revokes_what_is_built_on_it(project, aws):
    graph = project.path / "amis.yaml"
    graph.write_text(graph.read_text().replace(
        "  base:\n    parent: centos\n",
        "  base:\n    parent: centos\n    regions: [eu-west-1, us-east-1]\n"))
    ok(project.doit("amis"))
    base = json.loads(aws.objects()["channels/main/base.json"])["amis"]
    said = ok(project.doit("revoke", "-a", base["us-east-1"], "-r", "CVE-2026-0002")).stdout
    revoked = {k.split("/")[1][:-len(".json")] for k in aws.objects()
               if k.startswith("revocations/")}
    everything = {a for image in IMAGES
                  for a in json.loads(aws.objects()[f"channels/main/{image}.json"])["amis"].values()}
    assert revoked == everything, said
    project.reset_count()
    ok(project.doit("amis"))
    assert sorted(project.packer_builds()) == sorted(IMAGES)
