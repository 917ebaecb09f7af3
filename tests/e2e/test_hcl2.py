"""HCL2 templates with the real Packer 1.6.6 and the emulator: a .pkr.hcl
file, a .pkr.json file and a folder build; packer init, fmt and
hcl2_upgrade; sensitive values from var files are masked."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from support import shapes
from support.project import (CODE_FILES, IMAGES, Project, commit, copy_project, failed, image_setting,
                      legacy_template, ok, sandbox_env, write_script)

ALL = ["folder", "hcl", "pkrjson"]


@pytest.fixture
def zoo(tmp_path, aws, counting_packer) -> Project:
    script, runs = counting_packer
    path = copy_project(tmp_path / "repo", CODE_FILES, shapes.hcl_zoo)
    return Project(path, sandbox_env(tmp_path, aws.url, script), runs)


def test_hcl2_images_build_with_the_real_packer(zoo, aws):
    first = ok(zoo.doit("amis", "-v"))          # -v: the steps' own output is shown
    assert sorted(zoo.packer_builds()) == ALL
    for said in ("hcl local step ran", "motd says hello", "pkr.json step ran", "folder step ran",
                 "folder heredoc ran"):
        assert said in first.stdout, said
    assert "[hcl] sandbox: left out provisioner 1 (shell), provisioner 2 (file)" in first.stdout
    assert "[pkrjson] sandbox: left out provisioner 2 (shell)" in first.stdout
    assert "[folder] sandbox: left out dynamic provisioner 1 (file)" in first.stdout
    record = json.loads(aws.objects()["channels/main/hcl.json"])
    tags = aws.ec2.describe_images(ImageIds=[record["amis"]["eu-west-1"]])["Images"][0]["Tags"]
    assert {t["Key"]: t["Value"] for t in tags}["Digest"] == record["digest"]
    # Which edit rebuilds which image: tests/integration/test_hcl2.py.


def test_packer_init_runs_once_per_template_digest(zoo, tmp_path):
    """A Packer that has `init` (1.7+) initialises a template with
    required_plugins before validate and build, once per digest."""
    calls = tmp_path / "calls"
    real = zoo.env["PACKER"]
    newer = write_script(tmp_path / "newer", f"""#!/bin/sh
echo "$1" >> "{calls}"
case "$1" in
  version) echo "1,,version,1.8.0"; exit 0;;
  init) exit 0;;
esac
exec "{real}" "$@"
""")
    plugins = zoo.path / "packer/folder/plugins.pkr.hcl"
    env = {"PACKER": str(newer)}
    plugins.write_text('packer {\n  required_plugins {\n    amazon = {\n      version = ">= 1.0.0"\n'
                       '      source  = "github.com/hashicorp/amazon"\n    }\n  }\n}\n')
    commit(zoo.path)
    init_calls = lambda: calls.read_text().split().count("init")      # noqa: E731
    # Packer 1.6.6 behind the stand-in cannot read the block it was asked to init
    # for, so validate fails after init: what counts here is that init ran first.
    zoo.doit("validate:folder", env=env)
    assert init_calls() == 1
    zoo.doit("validate:folder", env=env)
    assert init_calls() == 1                           # same digest: not again
    plugins.write_text(plugins.read_text() + "\n")
    commit(zoo.path)
    zoo.doit("validate:folder", env=env)
    assert init_calls() == 2


def test_validate_reports_hcl2_files_to_format(zoo):
    path = zoo.path / "packer/folder/build.pkr.hcl"
    path.write_text(path.read_text().replace("  sources = [", "  sources    =   ["))
    out = failed(zoo.doit("validate:folder"))
    assert "packer fmt -check: packer/folder/build.pkr.hcl not in Packer's canonical format" in out


def _files_read(project, image: str) -> set[str]:
    out = ok(project.doit("inputs", "-i", image)).stdout
    return {line.split()[0] for line in out.splitlines() if line.startswith(("ansible/", "packer/"))}


def test_a_json_template_brought_over_with_hcl2_upgrade_reads_the_same_files_and_builds(project):
    """The README's way from JSON to HCL2, with the real `packer hcl2_upgrade`."""
    legacy = legacy_template(project, "worker")
    commit(project.path)
    before = _files_read(project, "worker")
    subprocess.run([shutil.which("packer"), "hcl2_upgrade",
                    "-output-file=packer/worker_ami.pkr.hcl", "packer/worker_ami.json"],
                   cwd=project.path, check=True, capture_output=True)
    legacy.unlink()
    graph = project.path / "amis.yaml"
    graph.write_text(graph.read_text().replace("template: packer/worker_ami.json",
                                               "template: packer/worker_ami.pkr.hcl"))
    commit(project.path)
    after = _files_read(project, "worker")
    assert after - before == {"packer/worker_ami.pkr.hcl"}
    assert before - after == {"packer/worker_ami.json"}
    ok(project.doit("validate:worker", env={"AMI_SKIP_VALIDATE": None}))
    ok(project.doit("amis"))
    assert sorted(project.packer_builds()) == sorted(IMAGES)


def test_a_sensitive_value_from_a_var_file_is_masked(zoo):
    (zoo.path / "packer/folder/secret.pkr.hcl").write_text(
        'variable "token" {\n  type      = string\n  default   = "x"\n  sensitive = true\n}\n')
    build = zoo.path / "packer/folder/build.pkr.hcl"
    build.write_text(build.read_text().replace('"echo folder step ran"',
                                               '"echo folder step ran with ${var.token}"'))
    (zoo.path / "packer/folder.pkrvars.hcl").write_text('token = "s3cr3t-from-var-file"\n')
    image_setting(zoo, "folder", "var_files: [packer/folder.pkrvars.hcl]")
    out = ok(zoo.doit("ami:folder", env={"AMI_VERBOSE": "1"})).stdout
    assert "folder step ran with <sensitive>" in out
    logs = "".join(p.read_text() for p in (zoo.path / ".amis/logs").glob("folder-*.log"))
    assert "s3cr3t-from-var-file" not in out + logs and "folder step ran with" in logs


def test_an_image_of_a_template_with_several_sources_builds_the_one_it_names(zoo, aws):
    source = zoo.path / "packer/folder/source.pkr.hcl"
    source.write_text(source.read_text() + shapes.HCL_SOURCE.replace("NAME", "arm").replace(
        "${var.image}-", "${var.image}-arm-"))
    build = zoo.path / "packer/folder/build.pkr.hcl"
    build.write_text(build.read_text().replace('sources = ["source.amazon-ebs.folder"]',
                                               'sources = ["source.amazon-ebs.folder", '
                                               '"source.amazon-ebs.arm"]'))
    commit(zoo.path)
    line = failed(zoo.doit("amis"))
    assert "packer/folder has 2 sources (amazon-ebs.arm, amazon-ebs.folder)" in line
    assert zoo.packer_builds() == []
    image_setting(zoo, "folder", "only: amazon-ebs.arm")
    commit(zoo.path)
    ok(zoo.doit("amis"))
    made = aws.ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "tag:Image", "Values": ["folder"]}])["Images"]
    record = json.loads(aws.objects()["channels/main/folder.json"])
    assert [i["ImageId"] for i in made] == [record["amis"]["eu-west-1"]]
    assert made[0]["Name"].startswith("folder-arm-")


@pytest.mark.parametrize("step", ['echo edited >> ${path.root}/conf/app.conf',
                                  'chmod 700 ${path.root}/conf/app.conf'])
def test_a_build_whose_inputs_change_while_it_runs_is_not_published(zoo, aws, step):
    """A shell-local step writes to a staged input (as an editor or a
    provisioner would): the repository never sees it, and nothing is published."""
    ok(zoo.doit("amis"))
    conf = zoo.path / "packer/folder/conf/app.conf"
    before = (conf.read_bytes(), conf.stat().st_mode)
    record = aws.objects()["channels/main/folder.json"]
    build = zoo.path / "packer/folder/build.pkr.hcl"
    build.write_text(build.read_text().replace('inline = ["echo folder step ran"]',
                                               f'inline = ["echo folder step ran", "{step}"]'))
    commit(zoo.path)
    out = failed(zoo.doit("amis"))
    assert "image folder: packer/folder/conf/app.conf changed in the stage while Packer ran " \
           "(a step wrote to its inputs): the AMI is not what its digest says; nothing " \
           "published" in out
    assert "deregistered what the failed build made" in out
    assert (conf.read_bytes(), conf.stat().st_mode) == before
    assert aws.objects()["channels/main/folder.json"] == record


def test_an_hcl_mistake_is_reported_at_the_users_file_and_line(project):
    """packer validate runs on the stage's generated JSON copy; its error is
    shown at the user's .pkr.hcl file and line, and the stage is kept."""
    path = project.path / "packer/ami/ami.pkr.hcl"
    lines = path.read_text().splitlines()
    # an argument Packer does not know, which only its own decoder checks
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("instance_type"))
    lines[at] = lines[at].replace("var.instance_type", '"t3.small"').replace(
        "instance_type", "instance_typo")
    path.write_text("\n".join(lines) + "\n")
    commit(project.path)
    out = failed(project.doit("validate:base"))
    assert f"on packer/ami/ami.pkr.hcl line {at + 1}" in out, out
    error = next(l for l in out.splitlines() if l.startswith("ERROR: "))
    assert error.startswith("ERROR: packer validate packer/ami failed: ") and \
        f"on packer/ami/ami.pkr.hcl line {at + 1}" in error, error
    kept = error.split("stage kept in ")[1].rstrip("/")
    assert (project.path / kept / "packer/ami/ami.hcl.pkr.json").is_file(), error
    assert ".hcl.pkr.json line" not in out


def test_a_template_this_tool_cannot_read_is_handed_to_packers_own_parser(project):
    """A syntax mistake python-hcl2 stops at: plan names it once at its line,
    and `doit validate` shows what the real Packer's parser says, and where."""
    path = project.path / "packer/ami/ami.pkr.hcl"
    lines = path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("source_ami"))
    lines[at] = lines[at].replace("= var.source_ami", "= = var.source_ami")
    path.write_text("\n".join(lines) + "\n")
    commit(project.path)
    plan = failed(project.doit("plan"))
    said = [line for line in plan.splitlines() if "not valid HCL2" in line]
    assert len(said) == 1 and f"packer/ami/ami.pkr.hcl:{at + 1}: " in said[0], plan
    out = failed(project.doit("validate"))
    assert f"on packer/ami/ami.pkr.hcl line {at + 1}" in out, out
    assert out.count("Expected the start of an expression") == 1, out
    error = next(l for l in out.splitlines() if l.startswith("ERROR: image base: "))
    assert error.startswith("ERROR: image base: packer validate -syntax-only packer/ami: Error: "
                            "Invalid expression, on packer/ami/ami.pkr.hcl line "
                            f"{at + 1}"), error
