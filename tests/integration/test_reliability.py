"""Packer failures and retries, AMIs gone, the doit database lost, access
denied: through doit in process, with the scripted Packer."""

from __future__ import annotations

import json
import re

import pytest

from support.project import failed, ok
from tasks.adapters.packer_output import Result


def flaky(tree, error: str, failures: int) -> None:
    """base's builds fail ``failures`` times with ``error``, then build."""
    tree.packer.fail["base"] = error
    tree.packer.fail_times["base"] = failures


@pytest.mark.parametrize("error", [
    "Error launching source instance: InsufficientInstanceCapacity: We currently do not have "
    "sufficient t3.small capacity",
    "RequestLimitExceeded: Request limit exceeded.",
    "Error waiting for AMI: ResourceNotReady: exceeded wait attempts",
])
def test_transient_aws_errors_are_retried(tree, error):
    flaky(tree, error, failures=2)
    result = ok(tree.doit("ami:base", env={"AMI_RETRY_BASE_SECONDS": "0.01"}))
    assert tree.packer.failures == ["base", "base"]
    assert result.stdout.count("transient AWS error") == 2
    assert "(3 of 3)" in result.stdout
    assert tree.record("base").exists()
    logs = sorted(p.name for p in (tree.path / ".amis/logs").glob("base-*.log")
                  if not p.name.endswith((".machine.log", "-tests.log")))
    assert len(logs) == 3 and any("retry2" in name for name in logs)


def test_retries_are_bounded(tree):
    flaky(tree, "Throttling: Rate exceeded", failures=9)
    out = failed(tree.doit("ami:base", env={"AMI_PACKER_RETRIES": "1",
                                            "AMI_RETRY_BASE_SECONDS": "0.01"}))
    assert tree.packer.failures == ["base", "base"]
    assert "image base: Packer exited 1: Throttling: Rate exceeded" in out
    assert not tree.record("base").exists()


def test_permanent_errors_fail_at_once(tree):
    flaky(tree, "UnauthorizedOperation: You are not authorized", failures=9)
    out = failed(tree.doit("ami:base", env={"AMI_RETRY_BASE_SECONDS": "0.01"}))
    assert tree.packer.failures == ["base"]
    assert "transient" not in out


def test_exit_zero_without_an_artifact_is_a_failure(tree, aws):
    tree.packer.instead["base"] = lambda _given: Result(exit_code=0)
    out = failed(tree.doit("ami:base"))
    assert "image base: Packer reported no AMI artifact; nothing published" in out
    assert [k for k in aws.objects() if "base" in k] == []


def test_bad_retry_setting_is_one_line(tree):
    out = failed(tree.doit("amis", env={"AMI_PACKER_RETRIES": "many"}))
    assert "AMI_PACKER_RETRIES='many' must be a non-negative whole number" in out


def test_a_deregistered_ami_is_rebuilt_and_plan_says_so(tree, aws):
    ok(tree.doit("amis"))
    tree.reset_count()
    worker = json.loads(tree.record("worker").read_text())
    aws.ec2.deregister_image(ImageId=worker["amis"]["eu-west-1"])
    plan = ok(tree.doit("plan"))
    assert re.search(rf"^worker\s+build.*AMI {worker['amis']['eu-west-1']} \(eu-west-1\) no longer exists",
                     plan.stdout, re.M), plan.stdout
    result = ok(tree.doit("amis"))
    assert f"[worker] build: AMI {worker['amis']['eu-west-1']} (eu-west-1) no longer exists" \
        in result.stdout and result.stdout.count("no longer exists") == 1
    assert tree.packer_builds() == ["worker"]
    assert json.loads(tree.record("worker").read_text())["amis"]["eu-west-1"] != \
        worker["amis"]["eu-west-1"]


def test_losing_the_doit_database_rebuilds_nothing(tree):
    ok(tree.doit("amis"))
    tree.reset_count()
    (tree.path / ".doit-amis.sqlite3").unlink()
    result = ok(tree.doit("amis"))
    assert tree.packer_builds() == []
    assert result.stdout.count(" up to date") >= 5


def test_access_denied_fails_before_any_build_and_changes_nothing(tree, aws):
    ok(tree.doit("amis"))
    tree.reset_count()
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    before = aws.objects()
    aws.s3.put_bucket_policy(Bucket="test-amis", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::test-amis/*"}]}))
    out = failed(tree.doit("amis"))
    assert re.search(r"reading s3://test-amis/\S+\.json: (403|AccessDenied): .*"
                     r"grant the build role access", out), out
    assert tree.packer_builds() == []
    aws.s3.delete_bucket_policy(Bucket="test-amis")
    assert aws.objects() == before
