"""HCL2 templates through doit in process, on the shapes of support/shapes.py:
only declared variables reach Packer, and what Packer 1.6.6 cannot run is
refused with one line before any build."""

from __future__ import annotations

import re

import pytest

from support import shapes
from support.inproc import Tree
from support.project import CODE_FILES, commit, copy_project, failed, image_setting, ok
from support.shapes import edits_rebuild_exactly_their_readers


@pytest.fixture
def zoo(tree, tmp_path) -> Tree:
    """The HCL2 shapes (a .pkr.hcl file, a .pkr.json file, a folder) in a repository."""
    return Tree(copy_project(tmp_path / "zoo", CODE_FILES, shapes.hcl_zoo), tree.url)


def test_an_edit_rebuilds_exactly_the_image_that_reads_the_file(zoo):
    ok(zoo.doit("amis"))
    assert sorted(zoo.packer_builds()) == ["folder", "hcl", "pkrjson"]
    zoo.reset_count()
    edits_rebuild_exactly_their_readers(zoo, shapes.HCL_READERS, shapes.HCL_UNREAD)


def test_only_declared_variables_reach_packer(zoo):
    """HCL2 refuses a -var it does not declare; the folder template declares
    neither `playbook` nor `digest`, and builds."""
    ok(zoo.doit("ami:folder"))
    build = next(b for b in zoo.packer.builds if b.image == "folder")
    assert set(build.variables) == {"image", "region", "source_ami"}


def test_required_plugins_are_refused_by_packer_1_6_before_any_build(zoo):
    (zoo.path / "packer/folder/plugins.pkr.hcl").write_text(
        'packer {\n  required_plugins {\n    amazon = {\n      version = ">= 1.0.0"\n'
        '      source  = "github.com/hashicorp/amazon"\n    }\n  }\n}\n')
    commit(zoo.path)
    out = failed(zoo.doit("amis"))
    assert re.search(r"image folder: packer/folder/plugins\.pkr\.hcl:2: packer \{ required_plugins "
                     r"\} needs Packer 1\.7 or newer; found 1\.6\.6: upgrade Packer, or remove "
                     r"the block", out), out
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
    assert re.search(r"image hcl: packer/hcl/image\.pkr\.hcl:\d+: templatefile\(\) needs Packer "
                     r"1\.7 or newer; found 1\.6\.6: upgrade Packer, or use file\(\)", out), out
    assert sorted(zoo.packer_builds()) == ["folder", "pkrjson"]


def test_an_unmet_required_version_is_refused(zoo):
    (zoo.path / "packer/folder/version.pkr.hcl").write_text(
        'packer {\n  required_version = ">= 1.9.0"\n}\n')
    commit(zoo.path)
    out = failed(zoo.doit("amis"))
    assert 'image folder: packer/folder: packer { required_version = ">= 1.9.0" } is not met ' \
           'by Packer 1.6.6' in out
    assert sorted(zoo.packer_builds()) == ["hcl", "pkrjson"]


def test_an_hcl2_template_error_is_one_line(zoo):
    (zoo.path / "packer/hcl/image.pkr.hcl").write_text('source "amazon-ebs" "x" {\n  region = \n')
    out = failed(zoo.doit("list"))
    assert "packer/hcl/image.pkr.hcl:1: this block is never closed (a } is missing after " \
           "it): fix it" in out


def test_a_variable_known_only_during_the_build_is_refused_in_hcl2(zoo):
    path = zoo.path / "packer/folder/build.pkr.hcl"
    path.write_text(path.read_text().replace(
        '    inline = ["echo folder step ran"]',
        '    script = "${path.root}/${var.source_ami}.sh"'))
    image_setting(zoo, "folder", "vars: {}")
    out = failed(zoo.doit("list"))
    assert re.search(r"packer/folder/build.pkr.hcl:\d+: provisioner 1 \(shell-local\) script "
                     r"'\$\{path\.root\}/\$\{var\.source_ami\}\.sh': cannot be resolved before the "
                     r"build \(variable source_ami is only known during the build\): list the "
                     r'files it may read under extra_inputs of image folder in amis.yaml, e.g. '
                     r'extra_inputs: \["packer/folder/\*\.sh"\]', out), out


def test_pkr_var_in_the_environment_is_refused_before_packer(zoo):
    out = failed(zoo.doit("ami:folder", env={"PKR_VAR_region": "us-west-2"}))
    assert "image folder: PKR_VAR_region is set: Packer would read it as variable region" in out
    assert zoo.packer_builds() == []
