"""End to end on trees in the shapes users bring, with the real Packer and
the emulator: each shape builds from its stage, and a build reads nothing
that was not tracked."""

from __future__ import annotations

import json
import re

import pytest

from support import shapes
from support.shapes import edit
from support.project import CODE_FILES, Project, commit, copy_project, failed, ok, sandbox_env

ALL = ["app", "eks", "local", "shell"]


@pytest.fixture
def zoo(tmp_path, aws, counting_packer) -> Project:
    script, runs = counting_packer
    path = copy_project(tmp_path / "repo", CODE_FILES, shapes.zoo)
    return Project(path, sandbox_env(tmp_path, aws.url, script), runs)


def test_the_shapes_build_with_the_real_packer(zoo):
    first = ok(zoo.doit("amis", "-v"))          # -v: the steps' own output is shown
    # var files reach Packer (eks has a required variable only its var file sets),
    # {{template_dir}} is the template's own folder in the stage, and shell-local
    # scripts run from the image's packer_dir.
    assert sorted(zoo.packer_builds()) == ALL
    assert "[shell]     amazon-ebs: local check ran" in first.stdout
    assert "[shell]     amazon-ebs: relative ran" in first.stdout
    assert "[shell] sandbox: left out provisioner 1 (shell), provisioner 2 (shell), " \
           "provisioner 3 (file), provisioner 4 (file), provisioner 5 (powershell)" in first.stdout
    # Which edit rebuilds which image: tests/integration/test_shapes.py.


def test_a_read_the_walk_cannot_know_fails_until_declared(zoo):
    template = zoo.path / "packer/linux/buildkite-ami.json"
    data = json.loads(template.read_text())
    data["provisioners"].append({"type": "shell-local", "inline": ["cat scripts/motd"]})
    template.write_text(json.dumps(data, indent=2))
    shapes.write(zoo.path, {"packer/linux/scripts/motd": "hello from motd\n"})
    commit(zoo.path)
    out = failed(zoo.doit("ami:shell"))
    assert "scripts/motd: No such file or directory" in out
    assert "image shell: Packer exited 1" in out

    graph = zoo.path / "amis.yaml"
    graph.write_text(graph.read_text().replace(
        "    var_files: [packer/linux/vars.json]\n",
        "    var_files: [packer/linux/vars.json]\n"
        "    extra_inputs: [packer/linux/scripts/motd]\n"))
    commit(zoo.path)
    built = ok(zoo.doit("ami:shell", env={"AMI_VERBOSE": "1"}))
    assert "hello from motd" in built.stdout
    zoo.reset_count()
    assert re.search(r"^shell\s+up to date", ok(zoo.doit("plan")).stdout, re.M)
    edit(zoo.path, "packer/linux/scripts/motd")
    commit(zoo.path)
    assert "changed packer/linux/scripts/motd" in ok(zoo.doit("plan")).stdout
    ok(zoo.doit("ami:shell"))
    assert zoo.packer_builds() == ["shell"]
