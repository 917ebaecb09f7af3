"""Packer failures, retries, masking of sensitive values, secrets."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from conftest import failed, ok, print_sensitive, write_script
from tasks.adapters import packer_output as packer
from tasks.ops.build import backoff

REAL = shutil.which("packer")




def flaky_packer(tmp_path, error: str, failures: int):
    """Fails `failures` times with `error`, then runs the real Packer."""
    count = tmp_path / "flaky-count"
    return write_script(tmp_path / "flaky-packer", f"""#!/bin/sh
[ "$1" = version ] && exec "{REAL}" "$@"
n=$(cat "{count}" 2>/dev/null || echo 0)
if [ "$n" -lt {failures} ]; then
  echo $((n + 1)) > "{count}"
  echo "1,,ui,say,==> amazon-ebs: Launching a source AWS instance..."
  echo "1,amazon-ebs,error,{error}"
  echo "1,,error-count,1"
  exit 1
fi
exec "{REAL}" "$@"
"""), count


@pytest.mark.parametrize("error", [
    "Error launching source instance: InsufficientInstanceCapacity: We currently do not have "
    "sufficient t3.small capacity",
    "RequestLimitExceeded: Request limit exceeded.",
    "Error waiting for AMI: ResourceNotReady: exceeded wait attempts",
])
def test_transient_aws_errors_are_retried(project, tmp_path, error):
    script, count = flaky_packer(tmp_path, error, failures=2)
    result = ok(project.doit("ami:base", env={"PACKER": str(script),
                                              "AMI_RETRY_BASE_SECONDS": "0.01"}))
    assert count.read_text().strip() == "2"
    assert result.stdout.count("transient AWS error") == 2
    assert "(3 of 3)" in result.stdout
    assert project.record("base").exists()
    logs = sorted(p.name for p in (project.path / ".amis/logs").glob("base-*.log"))
    assert len(logs) == 3 and any("retry2" in name for name in logs)


def test_retries_are_bounded(project, tmp_path):
    script, count = flaky_packer(tmp_path, "Throttling: Rate exceeded", failures=9)
    out = failed(project.doit("ami:base", env={"PACKER": str(script), "AMI_PACKER_RETRIES": "1",
                                               "AMI_RETRY_BASE_SECONDS": "0.01"}))
    assert count.read_text().strip() == "2"
    assert "image base: Packer exited 1: Throttling: Rate exceeded" in out
    assert not project.record("base").exists()


def test_permanent_errors_fail_at_once(project, tmp_path):
    script, count = flaky_packer(tmp_path, "UnauthorizedOperation: You are not authorized",
                                 failures=9)
    out = failed(project.doit("ami:base", env={"PACKER": str(script),
                                               "AMI_RETRY_BASE_SECONDS": "0.01"}))
    assert count.read_text().strip() == "1"
    assert "transient" not in out


def test_exit_zero_without_an_artifact_is_a_failure(project, tmp_path, aws):
    script = write_script(tmp_path / "no-artifact", f"""#!/bin/sh
[ "$1" = version ] && exec "{REAL}" "$@"
echo "1,,ui,say,==> Builds finished but no artifacts were created."
exit 0
""")
    out = failed(project.doit("ami:base", env={"PACKER": str(script)}))
    assert "image base: Packer reported no AMI artifact; nothing published" in out
    assert [k for k in aws.objects() if "base" in k] == []


def test_bad_retry_setting_is_one_line(project):
    out = failed(project.doit("amis", env={"AMI_PACKER_RETRIES": "many"}))
    assert "AMI_PACKER_RETRIES='many' must be a non-negative whole number" in out


SECRET = "dd0123456789abcdef, with a comma"


def test_sensitive_values_never_reach_console_log_record_or_tags(project, aws):
    """Packer 1.6 prints sensitive variables unmasked in machine-readable mode."""
    print_sensitive(project, "datadog_api_key", "echo using key {value}")
    result = ok(project.doit("amis", env={"DATADOG_API_KEY": SECRET}))
    assert f"using key {packer.MASK}" in result.stdout
    places = {"console": result.stdout + result.stderr}
    for path in (project.path / ".amis").rglob("*"):
        if path.is_file() and path.suffix in {".log", ".json", ".yaml"}:
            places[str(path)] = path.read_text(errors="replace")
    for key, body in aws.objects().items():
        places[f"s3://{key}"] = body.decode(errors="replace")
    for image in aws.ec2.describe_images(Owners=["self"])["Images"]:
        places[image["ImageId"]] = json.dumps(image.get("Tags", []))
    assert len(places) > 20
    for where, text in places.items():
        for form in (SECRET, SECRET.replace(",", "%!(PACKER_COMMA)"), "dd0123456789abcdef"):
            assert form not in text, f"secret found in {where}"


def test_masker_handles_escaped_forms():
    mask = packer.Masker(["a,b\nc"])
    assert mask("x a%!(PACKER_COMMA)b\\nc y") == f"x {packer.MASK} y"
    assert mask("a,b\nc") == packer.MASK


def test_sensitive_values_resolve_env_defaults():
    from tasks.inputs.template import Template, sensitive_values
    template = Template(path="t.json", format="json", files=("t.json",), dir=".",
                        variables={"k": "{{env `K`}}", "h": '${env("H")}', "plain": "p",
                                   "other": "o"},
                        sensitive=("k", "h", "plain", "missing"), blocks=())
    assert sensitive_values(template, {"plain": "given"}, {"K": "from-env", "H": "hcl"}) == \
        ["from-env", "hcl", "given"]


def test_backoff_grows_and_is_capped():
    for attempt in range(5):
        delay = backoff(attempt, 10)
        assert 10 * 2 ** attempt * 0.5 <= delay <= min(600, 10 * 2 ** attempt)
    assert backoff(20, 10) <= 600


def test_a_deregistered_ami_is_rebuilt_and_plan_says_so(project, aws):
    ok(project.doit("amis"))
    project.reset_count()
    worker = json.loads(project.record("worker").read_text())
    aws.ec2.deregister_image(ImageId=worker["amis"]["eu-west-1"])
    plan = ok(project.doit("plan"))
    assert re.search(rf"^worker\s+AMI gone.*AMI {worker['amis']['eu-west-1']} no longer exists",
                     plan.stdout, re.M), plan.stdout
    result = ok(project.doit("amis"))
    assert "[worker] recorded AMI" in result.stdout
    assert project.packer_builds() == ["worker"]
    assert json.loads(project.record("worker").read_text())["amis"]["eu-west-1"] != \
        worker["amis"]["eu-west-1"]


def test_losing_the_doit_database_rebuilds_nothing(project):
    ok(project.doit("amis"))
    project.reset_count()
    (project.path / ".doit-amis.sqlite3").unlink()
    result = ok(project.doit("amis"))
    assert project.packer_builds() == []
    assert result.stdout.count(" reused") >= 5


def test_access_denied_fails_before_any_build_and_changes_nothing(project, aws):
    ok(project.doit("amis"))
    project.reset_count()
    (project.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")
    before = aws.objects()
    aws.s3.put_bucket_policy(Bucket="test-amis", Policy=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Deny", "Principal": "*", "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::test-amis/*"}]}))
    out = failed(project.doit("amis"))
    assert re.search(r"reading s3://test-amis/\S+\.json: (403|AccessDenied): .*"
                     r"grant the build role access", out), out
    assert project.packer_builds() == []
    aws.s3.delete_bucket_policy(Bucket="test-amis")
    assert aws.objects() == before
