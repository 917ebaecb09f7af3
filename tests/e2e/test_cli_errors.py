"""User mistakes reach the user as one line, never a traceback."""

from __future__ import annotations

import re

import pytest

from support.project import BUCKET, Project, base_env, copy_project, failed


@pytest.fixture
def offline(tmp_path) -> Project:
    """The repository with no emulator: AWS calls would go to a closed port."""
    env = base_env(tmp_path)
    env["AWS_ENDPOINT_URL"] = "http://127.0.0.1:9"
    env["AMI_BUCKET"] = BUCKET
    return Project(copy_project(tmp_path / "repo"), env, tmp_path / "runs")


def one_line_error(result) -> str:
    out = failed(result)
    lines = out.splitlines()
    # A failed task and a dodo-level mistake are both "ERROR: message".
    assert "TaskFailed" not in out, out
    errors = [l for l in lines if l.startswith("ERROR: ")]
    assert len(errors) == 1, out
    return errors[0]


def test_doit_list_needs_no_network(offline):
    result = offline.doit("list")
    assert result.returncode == 0, result.stderr
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert names == ["ami", "amis", "annotate", "cloud_init", "explain", "gc", "graph", "inputs",
                     "pipeline", "plan", "promote", "pull", "revoke", "sandbox_stop", "test", "validate",
                     "verify"]
    result = offline.doit("list", "--all")
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert [n for n in names if n.startswith("ami:")] == [
        "ami:base", "ami:build", "ami:centos", "ami:deploy", "ami:web", "ami:worker"]


@pytest.mark.parametrize("edit, expected", [
    (("parent: base\n    regions", "parent: bsae\n    regions"),
     r"amis.yaml: image web: unknown parent 'bsae'"),
    (("  base:\n    parent: centos", "  base:\n    parent: deploy"),
     r"amis.yaml: image \w+: parent cycle"),
    (("  worker:\n", "  Worker/../x:\n"), r"amis.yaml: image 'Worker/../x': names must match"),
    (("  deploy:\n    parent: base\n", "  deploy:\n    parent: base\n  web:\n    parent: base\n"),
     r"amis.yaml: duplicate key 'web'"),
    (("playbook: ansible/build_ami.yaml", "playbook: ansible/nope.yaml"),
     r"amis.yaml: image build: playbook ansible/nope.yaml does not exist"),
    (("  deploy:\n    parent: base\n", "  deploy:\n    parent: base\n  cache:\n    parent: base\n"
                                      "    template: packer/cache.pkr.hcl\n"),
     r"amis.yaml: image cache: template packer/cache.pkr.hcl does not exist"),
])
def test_bad_graph_is_one_line(offline, edit, expected):
    graph = offline.path / "amis.yaml"
    text = graph.read_text()
    assert edit[0] in text
    graph.write_text(text.replace(edit[0], edit[1], 1))
    line = one_line_error(offline.doit("list"))
    assert re.search(expected, line), line


def test_unknown_role_is_one_line(offline):
    (offline.path / "ansible/web_ami.yaml").write_text(
        "- hosts: all\n  roles:\n    - web_app\n    - no_such_role\n")
    line = one_line_error(offline.doit("list"))
    assert "ansible/web_ami.yaml:4: role 'no_such_role' not found in ansible/roles/" in line


def test_missing_bucket_setting_outside_sandbox(offline):
    result = offline.doit("amis", env={"AMI_BUCKET": None})
    line = one_line_error(result)
    assert "AMI_BUCKET is not set" in line
    # nothing ran: the one line is all, no line per skipped image, no table
    assert "UnmetDependency" not in result.stderr
    assert (result.stdout + result.stderr).strip() == line, result.stdout + result.stderr


def test_unreachable_s3_fails_before_any_build(offline):
    result = offline.doit("amis")
    line = one_line_error(result)
    assert "cannot reach" in line and "127.0.0.1:9" in line
    assert not offline.runs_file.exists()


def test_missing_bucket_is_an_error_not_created(tmp_path, aws, counting_packer):
    env = base_env(tmp_path)
    env.update({"AWS_ENDPOINT_URL": aws.url, "AMI_BUCKET": "no-such-bucket",
                "PACKER": str(counting_packer[0])})
    project = Project(copy_project(tmp_path / "repo"), env, counting_packer[1])
    line = one_line_error(project.doit("amis"))
    assert "bucket s3://no-such-bucket does not exist" in line
    assert "no-such-bucket" not in [b["Name"] for b in aws.s3.list_buckets()["Buckets"]]
    assert project.packer_builds() == []


def test_invalid_bucket_name(offline):
    result = offline.doit("amis", env={"AMI_BUCKET": "Bad_Bucket"})
    line = one_line_error(result)
    assert "AMI_BUCKET='Bad_Bucket' is not a valid S3 bucket name" in line


@pytest.mark.parametrize("command", [("test", "-i", "web"),
                                     ("promote", "-i", "web", "-f", "feature", "-t", "main")])
def test_missing_bucket_is_one_line_for_every_command(offline, command):
    result = offline.doit(*command, env={"AMI_BUCKET": None})
    assert result.returncode == 3, result.stdout + result.stderr
    assert one_line_error(result).startswith("ERROR: AMI_BUCKET is not set: export AMI_BUCKET=")
