"""The example stack with the real checkers and the real Packer:
validation (packer validate, --syntax-check, ansible-lint), and what the
template makes of an AMI (tags, sharing, IMDSv2)."""

from __future__ import annotations

import json
import re

import pytest

from support.project import IMAGES, failed, legacy_template, ok


@pytest.fixture
def validating(project):
    project.env.pop("AMI_SKIP_VALIDATE")
    return project


def test_every_template_and_playbook_passes_validation(validating):
    result = ok(validating.doit("validate"))
    for image in IMAGES:
        assert f"[{image}] packer fmt -check, packer validate, --syntax-check " \
               f"ansible/{image}_ami.yaml: passed" in result.stdout
    assert "ansible-lint passed" in result.stdout
    again = ok(validating.doit("validate"))
    assert "passed" not in again.stdout                      # file_dep: nothing to re-check
    (validating.path / "ansible/roles/buildkite_agent/defaults/main.yml").write_text(
        "---\nbuildkite_agent_queue: default\nbuildkite_agent_tags: []\nbuildkite_agent_spawn: 3\n"
        "buildkite_agent_repo_baseurl: https://yum.buildkite.com/buildkite-agent/stable/x86_64/\n"
        "buildkite_agent_config: /etc/buildkite-agent/buildkite-agent.cfg\n")
    third = ok(validating.doit("validate"))
    rechecked = re.findall(r"^\[(\w+)\] packer fmt -check, packer validate.*: passed$", third.stdout,
                           re.M)
    assert sorted(rechecked) == ["build", "deploy"] and "ansible-lint passed" in third.stdout


def test_the_example_tree_validates_and_builds_end_to_end(validating, aws):
    result = ok(validating.doit("amis", "-v"))
    assert sorted(validating.packer_builds()) == sorted(IMAGES)
    for image in IMAGES:
        assert result.stdout.index(f"[{image}] validated: packer fmt -check, packer validate, "
                                   f"--syntax-check ansible/{image}_ami.yaml, ansible-lint") \
            < result.stdout.index(f"[{image}] building")
    again = ok(validating.doit("amis"))
    assert "validated" not in again.stdout           # nothing builds: nothing is validated
    web = json.loads(aws.objects()["channels/main/web.json"])
    tags = aws.ec2.describe_images(ImageIds=[web["amis"]["eu-west-1"]])["Images"][0]["Tags"]
    tags = {t["Key"]: t["Value"] for t in tags}
    assert {k: tags[k] for k in ("Image", "Digest", "ParentAmi", "Commit", "Branch")} == {
        "Image": "web", "Digest": web["digest"], "ParentAmi": web["parent"]["ami"],
        "Commit": web["git"]["commit"], "Branch": "main"}
    assert tags["BuildTime"]


def test_a_broken_template_fails_validation_of_that_image_only(validating):
    template = legacy_template(validating, "web")
    data = json.loads(template.read_text())
    data["builders"][0]["instanse_type"] = "t3.small"
    template.write_text(json.dumps(data))
    out = failed(validating.doit("amis"))
    assert "packer validate packer/web_ami.json failed" in out
    assert "instanse_type" in out
    assert sorted(validating.packer_builds()) == ["base", "build", "deploy", "worker"]


def test_a_broken_playbook_fails_syntax_check(validating):
    (validating.path / "ansible/worker_ami.yaml").write_text(
        "- hosts: all\n  roles: [worker_app]\n  tasks:\n    - name: Bad\n      no_such_module: {}\n")
    out = failed(validating.doit("validate"))
    assert "ansible-playbook --syntax-check ansible/worker_ami.yaml failed" in out


def test_lint_findings_fail_validation(validating):
    tasks_file = validating.path / "ansible/roles/worker_app/tasks/main.yml"
    tasks_file.write_text(tasks_file.read_text() + "\n- shell: echo unnamed\n")
    out = failed(validating.doit("validate:lint"))
    # one line names the file, the line and the rule, and how many more there are
    assert re.search(r"ansible-lint failed: ansible/roles/worker_app/tasks/main\.yml:\d+: "
                     r"\S+: .*\(and \d+ more\)", out), out


@pytest.mark.parametrize("third_party", [True, False])
def test_a_vendored_galaxy_role_is_not_held_to_the_projects_profile(validating, third_party):
    """A role installed from Galaxy (meta/.galaxy_install_info) with lint findings
    does not block the project's lint; the same role as the project's own does."""
    role = validating.path / "ansible/roles/geerlingguy.ntp"
    (role / "tasks").mkdir(parents=True)
    (role / "tasks/main.yml").write_text("- shell: echo unnamed and never changed\n")
    (role / "meta").mkdir()
    if third_party:
        (role / "meta/.galaxy_install_info").write_text("install_date: x\nversion: 2.3.0\n")
    playbook = validating.path / "ansible/web_ami.yaml"
    playbook.write_text(playbook.read_text() + "    - geerlingguy.ntp\n")
    result = validating.doit("validate:lint")
    if third_party:
        assert "ansible-lint passed" in ok(result).stdout
    else:
        assert "ansible-lint failed" in failed(result)


def test_an_ami_made_public_by_its_template_is_revoked_removed_and_not_published(project, aws):
    ok(project.doit("amis"))
    template = legacy_template(project, "worker")
    data = json.loads(template.read_text())
    data["builders"][0]["ami_groups"] = ["all"]
    template.write_text(json.dumps(data))
    refused = failed(project.doit("plan"))              # written out: refused before any build
    assert 'ami_groups includes "all", which makes the AMI public' in refused, refused
    data["builders"][0]["ami_groups"] = ["{{ lower `ALL` }}"]     # known only to Packer
    template.write_text(json.dumps(data))
    before = aws.objects()["channels/main/worker.json"]
    out = failed(project.doit("amis"))
    match = re.search(r"image worker: the build shared eu-west-1:(ami-\w+) with everyone, "
                      r"which amis.yaml does not allow", out)
    assert match, out
    # revoked first, then deregistered: what a failed build made does not stay behind
    assert f"deregistered what the failed build made: eu-west-1:{match.group(1)}" in out
    assert aws.ec2.describe_images(ImageIds=[match.group(1)])["Images"] == []
    assert aws.objects()["channels/main/worker.json"] == before


def test_the_build_instance_requires_imdsv2_before_provisioning(project, aws):
    """Packer 1.6 cannot set metadata_options: the runner does, as soon as
    Packer names the instance."""
    template = legacy_template(project, "base")
    data = json.loads(template.read_text())
    data["provisioners"].append({"type": "shell-local", "inline": ["sleep 1"]})
    template.write_text(json.dumps(data))
    ok(project.doit("ami:base"))
    instances = [i for r in aws.ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    built = [i for i in instances
             if {"Key": "Purpose", "Value": "amis-test"} not in i.get("Tags", [])]
    assert len(built) == 1 and len(instances) == 2      # Packer's, and the test stage's
    assert all(i["MetadataOptions"]["HttpTokens"] == "required" for i in instances)
