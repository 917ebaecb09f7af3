"""End to end on trees in the shapes users bring, with the real Packer and
the emulator: an edit rebuilds exactly the images that read the file, and
a build reads nothing that was not tracked."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

import shapes
from conftest import CODE_FILES, Project, commit, copy_project, failed, ok, sandbox_env

ALL = ["app", "eks", "local", "shell"]


@pytest.fixture
def zoo(tmp_path, aws, counting_packer) -> Project:
    script, runs = counting_packer
    path = copy_project(tmp_path / "repo", CODE_FILES, shapes.zoo)
    return Project(path, sandbox_env(tmp_path, aws.url, script), runs)


def would_build(plan: str) -> dict[str, str]:
    """image -> why, for the images the plan would build."""
    return {m[1]: m[2] for m in re.finditer(r"^(\w+)\s+(?:would rebuild|missing)\s+\S+\s+\S*\s+(.*)$",
                                            plan, re.M)}


def edits_rebuild_exactly_their_readers(zoo: Project, readers: dict[str, list[str]],
                                        unread: list[str]) -> None:
    """Edit the files in rounds, one per image and round: each plan names
    exactly the images that read an edited file, and each run builds them;
    editing what nothing reads builds nothing."""
    by_image: dict[str, list[str]] = defaultdict(list)
    for path, images in readers.items():
        assert len(images) == 1
        by_image[images[0]].append(path)
    for i in range(max(len(paths) for paths in by_image.values())):
        edited = {image: paths[i] for image, paths in by_image.items() if i < len(paths)}
        for path in edited.values():
            edit(zoo.path, path)
        commit(zoo.path)
        plan = ok(zoo.doit("plan")).stdout
        assert would_build(plan) == {image: f"changed {path}" for image, path in edited.items()}, plan
        ok(zoo.doit("amis"))
        assert sorted(zoo.packer_builds()) == sorted(edited), edited
        zoo.reset_count()
    for path in unread:
        edit(zoo.path, path)
    commit(zoo.path)
    assert "nothing to build" in ok(zoo.doit("plan")).stdout
    ok(zoo.doit("amis"))
    assert zoo.packer_builds() == []


def edit(root, rel: str) -> None:
    path = root / rel
    if rel.endswith(".pkr.json"):
        # HCL2's JSON syntax has no room for a stray key: change a setting.
        data = json.loads(path.read_text())
        for body in data["source"]["amazon-ebs"].values():
            body["instance_type"] = "t3.medium"
        path.write_text(json.dumps(data, indent=2))
    elif rel.endswith(".json"):
        data = json.loads(path.read_text())
        data["edited"] = "yes"
        path.write_text(json.dumps(data))
    else:
        path.write_text(path.read_text() + "\n# edited\n")


def test_the_shapes_build_and_rebuild_exactly_what_reads_an_edited_file(zoo):
    first = ok(zoo.doit("amis"))
    # var files reach Packer (eks has a required variable only its var file sets),
    # {{template_dir}} is the template's own folder in the stage, and shell-local
    # scripts run from the image's packer_dir.
    assert sorted(zoo.packer_builds()) == ALL
    assert "[shell]     amazon-ebs: local check ran" in first.stdout
    assert "[shell]     amazon-ebs: relative ran" in first.stdout
    assert "[shell] sandbox: left out provisioner 1 (shell), provisioner 2 (shell), " \
           "provisioner 3 (file), provisioner 4 (file), provisioner 5 (powershell)" in first.stdout
    zoo.reset_count()
    edits_rebuild_exactly_their_readers(zoo, shapes.READERS, shapes.UNREAD)


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
    built = ok(zoo.doit("ami:shell"))
    assert "hello from motd" in built.stdout
    zoo.reset_count()
    assert re.search(r"^shell\s+up to date", ok(zoo.doit("plan")).stdout, re.M)
    edit(zoo.path, "packer/linux/scripts/motd")
    commit(zoo.path)
    assert "changed packer/linux/scripts/motd" in ok(zoo.doit("plan")).stdout
    ok(zoo.doit("ami:shell"))
    assert zoo.packer_builds() == ["shell"]


def test_doit_inputs_lists_each_input_and_why(zoo):
    out = ok(zoo.doit("inputs", "-i", "app")).stdout
    assert re.search(r"^ansible/extra\.yml\s+packer/app\.json provisioner 1 \(ansible\) "
                     r"extra_arguments --extra-vars$", out, re.M), out
    assert re.search(r"^ansible/requirements\.yml\s+packer/app\.json provisioner 1 \(ansible\) "
                     r"galaxy_file$", out, re.M), out
    assert "app: " in out and "(ansible; template packer/app.json, Packer runs in .)" in out
