"""The example stack: validation, role-to-image precision, cloud-init user-data."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import IMAGES, ROOT, failed, legacy_template, ok
from tasks.ops import cloud_init
from tasks.core.errors import AmiError

ENVIRONMENTS = ["production", "staging"]




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
    result = ok(validating.doit("amis"))
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
    assert "ansible-lint failed" in out


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


def test_a_buildkite_role_change_rebuilds_only_the_agents(project):
    ok(project.doit("amis"))
    role_file = project.path / "ansible/roles/buildkite_agent/templates/buildkite-agent.cfg.j2"
    role_file.write_text(role_file.read_text() + 'disconnect-after-idle-timeout=600\n')
    result = ok(project.doit("plan"))
    stale = re.findall(r"^(\w+)\s+would rebuild", result.stdout, re.M)
    assert sorted(stale) == ["build", "deploy"]


# -- cloud-init ---------------------------------------------------------------

SECRETS = {"DATADOG_API_KEY": "0123456789abcdef0123456789abcdef",
           "PAPERTRAIL_DESTINATION": "syslog+tls://logs9.papertrailapp.com:12345",
           "BUILDKITE_AGENT_TOKEN": "bkua_secretsecretsecretsecretsecret"}


def test_user_data_is_rendered_per_image_and_environment(project):
    ok(project.doit("cloud_init", env=SECRETS))
    rendered = project.path / ".amis/cloud-init"
    files = sorted(p.relative_to(rendered).as_posix() for p in rendered.rglob("*.yaml"))
    assert files == [f"{e}/{i}.yaml" for e in ENVIRONMENTS for i in sorted(IMAGES)]
    for path in rendered.rglob("*.yaml"):
        text = path.read_text()
        assert text.startswith("#cloud-config\n")
        data = yaml.safe_load(text)
        boot_env = data["write_files"][0]["content"]
        assert "DATADOG_API_KEY_PARAMETER=/acme/shared/datadog/api_key" in boot_env
        assert ["/usr/local/sbin/datadog-configure"] in data["runcmd"]
        for secret in SECRETS.values():
            assert secret not in text
        if shutil.which("cloud-init"):
            subprocess.run(["cloud-init", "schema", "--config-file", str(path)], check=True)
    web = yaml.safe_load((rendered / "production/web.yaml").read_text())
    assert "IMAGE=registry.example.com/acme/web:2026-11-20" in web["write_files"][1]["content"]
    build = yaml.safe_load((rendered / "staging/build.yaml").read_text())
    assert "BUILDKITE_AGENT_TOKEN_PARAMETER=" in build["write_files"][0]["content"]
    assert ["/usr/local/sbin/buildkite-agent-configure"] in build["runcmd"]
    again = ok(project.doit("cloud_init"))
    assert "-- cloud_init:production/web" in again.stderr      # up to date


def test_a_missing_variable_names_template_and_variable(project):
    path = project.path / cloud_init.VARS_FILE
    text = path.read_text()
    path.write_text(text.replace("    worker_image: registry.example.com/acme/worker:2026-11-20\n", ""))
    out = failed(project.doit("cloud_init"))
    assert ("cloud-init/templates/worker.yaml.j2: 'worker_image' is undefined in environment "
            "production") in out


def test_a_secret_in_the_variables_is_refused(project):
    path = project.path / cloud_init.VARS_FILE
    path.write_text(path.read_text().replace(
        "    worker_concurrency: 8\n", "    worker_concurrency: 8\n    datadog_api_key: abc\n"))
    out = failed(project.doit("list"))
    assert "environments.production.datadog_api_key looks like a secret" in out


@pytest.mark.parametrize("line, what", [
    ("AKIAABCDEFGHIJKLMNOP", "an AWS access key id"),
    ("0123456789abcdef0123456789abcdef", "a 32-hex-digit key"),
    ("-----BEGIN RSA PRIVATE KEY-----", "a private key"),
])
def test_check_refuses_secret_values(line, what):
    text = f"#cloud-config\nruncmd:\n  - [echo, '{line}']\n"
    with pytest.raises(AmiError, match=f"x.yaml: line 3 holds what looks like {what}"):
        cloud_init.check(text, "x.yaml")


@pytest.mark.parametrize("text, expected", [
    ("runcmd: []\n", "must start with a '#cloud-config' line"),
    ("#cloud-config\nruncmd: [\n", "not valid YAML"),
    ("#cloud-config\nrun_cmd: []\n", "unknown cloud-config key 'run_cmd'"),
    ("#cloud-config\nwrite_files:\n  - path: /x\n", "write_files entry 1 needs 'path' and 'content'"),
])
def test_check_refuses_invalid_cloud_config(text, expected):
    with pytest.raises(AmiError, match=re.escape(expected)):
        cloud_init.check(text, "x.yaml")


def test_an_ami_made_public_by_its_template_is_made_private_and_not_published(project, aws):
    ok(project.doit("amis"))
    template = legacy_template(project, "worker")
    data = json.loads(template.read_text())
    data["builders"][0]["ami_groups"] = ["all"]
    template.write_text(json.dumps(data))
    before = aws.objects()["channels/main/worker.json"]
    out = failed(project.doit("amis"))
    match = re.search(r"image worker: the build shared eu-west-1:(ami-\w+) with everyone, "
                      r"which amis.yaml does not allow", out)
    assert match, out
    grants = aws.ec2.describe_image_attribute(ImageId=match.group(1), Attribute="launchPermission")
    assert grants["LaunchPermissions"] == []
    assert aws.objects()["channels/main/worker.json"] == before


def test_every_built_ami_is_asked_to_require_imdsv2(monkeypatch):
    """moto accepts ImdsSupport but does not keep it, so this checks the calls."""
    from botocore.stub import Stubber
    import boto3
    from tasks.ops import vetting as artifacts
    from tasks.ops.run import Run

    from datetime import datetime, timezone

    ec2 = boto3.client("ec2", region_name="eu-west-1", aws_access_key_id="x",
                       aws_secret_access_key="x")
    run = Run.load(ROOT, {"AMI_BUCKET": "stub-bucket"})
    started = datetime(2026, 1, 1, tzinfo=timezone.utc)
    amis = {"eu-west-1": "ami-11111111", "us-east-1": "ami-22222222"}
    image = {"Tags": [{"Key": "Image", "Value": "web"}, {"Key": "Digest", "Value": "d" * 64}],
             "CreationDate": "2026-01-01T00:00:05.000Z", "BlockDeviceMappings": []}
    with Stubber(ec2) as stub:
        for ami in amis.values():
            stub.add_response("describe_images", {"Images": [{**image, "ImageId": ami}]},
                              {"Filters": [{"Name": "image-id", "Values": [ami]}]})
        for ami in amis.values():
            stub.add_response("modify_image_attribute", {},
                              {"ImageId": ami, "ImdsSupport": {"Value": "v2.0"}})
            stub.add_response("describe_image_attribute", {"LaunchPermissions": []},
                              {"ImageId": ami, "Attribute": "launchPermission"})
            stub.add_response("describe_images", {"Images": [{**image, "ImageId": ami}]},
                              {"Filters": [{"Name": "image-id", "Values": [ami]}]})
        monkeypatch.setattr(run.aws, "client", lambda *_: ec2)
        artifacts.vet(run.aws, "web", (), "d" * 64, started, amis)
        stub.assert_no_pending_responses()


def test_the_build_instance_requires_imdsv2_before_provisioning(project, aws):
    """Packer 1.6 cannot set metadata_options: the runner does, as soon as
    Packer names the instance."""
    template = legacy_template(project, "base")
    data = json.loads(template.read_text())
    data["provisioners"].append({"type": "shell-local", "inline": ["sleep 1"]})
    template.write_text(json.dumps(data))
    ok(project.doit("ami:base"))
    instances = [i for r in aws.ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert len(instances) == 1
    assert instances[0]["MetadataOptions"]["HttpTokens"] == "required"
