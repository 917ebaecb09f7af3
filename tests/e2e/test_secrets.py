"""Secrets: the real Packer prints sensitive variables unmasked in
machine-readable mode; nothing of them may reach the console, a log, a
record or a tag."""

from __future__ import annotations

import json

from support.project import ok, print_sensitive
from tasks.adapters import packer_output as packer


SECRET = "dd0123456789abcdef, with a comma"

PEM = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAAB\n"
       "AAAAMwAAAAtzc2gtZWQyNTUxOQAAACBQb3J0YWJsZUtleUZvclRlc3RzT25seTEyMzQ1Ng\n"
       "-----END OPENSSH PRIVATE KEY-----")


def test_sensitive_values_never_reach_console_log_record_or_tags(project, aws):
    """Packer 1.6 prints sensitive variables unmasked in machine-readable mode."""
    print_sensitive(project, "datadog_api_key", "echo using key {value}")
    result = ok(project.doit("amis", env={"DATADOG_API_KEY": SECRET, "AMI_VERBOSE": "1"}))
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


def test_every_line_of_a_multi_line_secret_is_masked(project, aws):
    print_sensitive(project, "deploy_key", "printf '%s\\n' \"{value}\"")
    result = ok(project.doit("ami:base", env={"DEPLOY_KEY": PEM, "AMI_VERBOSE": "1"}))
    logs = "".join(p.read_text() for p in (project.path / ".amis/logs").glob("base-*.log"))
    for line in PEM.splitlines():
        assert line not in result.stdout and line not in logs, line
    assert result.stdout.count("<sensitive>") >= 4
