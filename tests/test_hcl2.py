"""HCL2 templates with the real Packer 1.6.6 and the emulator: a .pkr.hcl
file, a .pkr.json file and a folder build; edits rebuild exactly the image
that reads the file; what 1.6.6 cannot read is refused before any build."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

import shapes
from conftest import (CODE_FILES, IMAGES, Project, commit, copy_project, failed, image_setting,
                      legacy_template, ok, sandbox_env, write_script)
from test_inputs_e2e import edits_rebuild_exactly_their_readers

ALL = ["folder", "hcl", "pkrjson"]


@pytest.fixture
def zoo(tmp_path, aws, counting_packer) -> Project:
    script, runs = counting_packer
    path = copy_project(tmp_path / "repo", CODE_FILES, shapes.hcl_zoo)
    return Project(path, sandbox_env(tmp_path, aws.url, script), runs)


def test_hcl2_images_build_and_rebuild_exactly_what_reads_an_edited_file(zoo, aws):
    first = ok(zoo.doit("amis"))
    assert sorted(zoo.packer_builds()) == ALL
    for said in ("hcl local step ran", "motd says hello", "pkr.json step ran", "folder step ran",
                 "folder heredoc ran"):
        assert said in first.stdout, said
    assert "[hcl] sandbox: left out provisioner 1 (shell), provisioner 2 (file)" in first.stdout
    assert "[pkrjson] sandbox: left out provisioner 2 (shell)" in first.stdout
    record = json.loads(aws.objects()["channels/main/hcl.json"])
    tags = aws.ec2.describe_images(ImageIds=[record["amis"]["eu-west-1"]])["Images"][0]["Tags"]
    assert {t["Key"]: t["Value"] for t in tags}["Digest"] == record["digest"]
    zoo.reset_count()
    edits_rebuild_exactly_their_readers(zoo, shapes.HCL_READERS, shapes.HCL_UNREAD)


def test_only_declared_variables_reach_packer(zoo, tmp_path):
    """HCL2 refuses a -var it does not declare; the folder template declares
    neither `playbook` nor `digest`, and builds."""
    argv = tmp_path / "argv"
    real = zoo.env["PACKER"]
    spy = write_script(tmp_path / "spy", f"""#!/bin/sh
[ "$1" = build ] && echo "$@" >> "{argv}"
exec "{real}" "$@"
""")
    ok(zoo.doit("ami:folder", env={"PACKER": str(spy)}))
    passed = set(re.findall(r"-var (\w+)=", argv.read_text()))
    assert passed == {"image", "region", "source_ami"}


def test_required_plugins_are_refused_by_packer_1_6_before_any_build(zoo):
    (zoo.path / "packer/folder/plugins.pkr.hcl").write_text(
        'packer {\n  required_plugins {\n    amazon = {\n      version = ">= 1.0.0"\n'
        '      source  = "github.com/hashicorp/amazon"\n    }\n  }\n}\n')
    commit(zoo.path)
    out = failed(zoo.doit("amis"))
    assert "image folder: packer/folder/plugins.pkr.hcl: packer { required_plugins } needs " \
           "Packer 1.7 or newer; found 1.6.6: upgrade Packer, or remove the block" in out
    assert sorted(zoo.packer_builds()) == ["hcl", "pkrjson"]      # its siblings build


def test_templatefile_is_refused_by_packer_1_6_and_its_file_is_an_input(zoo):
    path = zoo.path / "packer/hcl/image.pkr.hcl"
    path.write_text(path.read_text().replace(
        'file("${path.root}/user-data.tpl")',
        'templatefile("${path.root}/user-data.tpl", { image = var.image })'))
    commit(zoo.path)
    inputs = ok(zoo.doit("inputs", "-i", "hcl")).stdout
    assert re.search(r"^packer/hcl/user-data\.tpl\s+packer/hcl/image\.pkr\.hcl templatefile\(\)$",
                     inputs, re.M), inputs
    out = failed(zoo.doit("amis"))
    assert "image hcl: packer/hcl/image.pkr.hcl: templatefile() needs Packer 1.7 or newer; " \
           "found 1.6.6: upgrade Packer, or use file()" in out
    assert sorted(zoo.packer_builds()) == ["folder", "pkrjson"]


def test_an_unmet_required_version_is_refused(zoo):
    (zoo.path / "packer/folder/version.pkr.hcl").write_text(
        'packer {\n  required_version = ">= 1.9.0"\n}\n')
    commit(zoo.path)
    out = failed(zoo.doit("amis"))
    assert 'image folder: packer/folder: packer { required_version = ">= 1.9.0" } is not met ' \
           'by Packer 1.6.6' in out
    assert sorted(zoo.packer_builds()) == ["hcl", "pkrjson"]


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


def test_an_hcl2_template_error_is_one_line(zoo):
    (zoo.path / "packer/hcl/image.pkr.hcl").write_text('source "amazon-ebs" "x" {\n  region = \n')
    out = failed(zoo.doit("list"))
    assert "packer/hcl/image.pkr.hcl (image hcl): not valid HCL2, or a construct python-hcl2 " \
           "cannot read (" in out


def test_a_variable_known_only_during_the_build_is_refused_in_hcl2(zoo):
    path = zoo.path / "packer/folder/build.pkr.hcl"
    path.write_text(path.read_text().replace(
        '    inline = ["echo folder step ran"]',
        '    script = "${path.root}/${var.source_ami}.sh"'))
    image_setting(zoo, "folder", "vars: {}")
    out = failed(zoo.doit("list"))
    assert re.search(r"packer/folder provisioner 1 \(shell-local\) script "
                     r"'\$\{path\.root\}/\$\{var\.source_ami\}\.sh': cannot be resolved before the "
                     r"build \(variable source_ami is only known during the build\): list the "
                     r'files it may read under extra_inputs of image folder in amis.yaml, e.g. '
                     r'extra_inputs: \["packer/folder/\*\.sh"\]', out), out


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
    out = ok(zoo.doit("ami:folder")).stdout
    assert "folder step ran with <sensitive>" in out
    logs = "".join(p.read_text() for p in (zoo.path / ".amis/logs").glob("folder-*.log"))
    assert "s3cr3t-from-var-file" not in out + logs and "folder step ran with" in logs


def test_pkr_var_in_the_environment_is_refused_before_packer(zoo):
    out = failed(zoo.doit("ami:folder", env={"PKR_VAR_region": "us-west-2"}))
    assert "image folder: PKR_VAR_region is set: Packer would read it as variable region" in out
    assert zoo.packer_builds() == []
