"""`only:` narrows an image's inputs to what its source reads, on the shape
of aws/amazon-ecs-ami (tests/fixtures/ecs-ami): a folder of HCL2 files, a
source per file, build blocks of several sources and provisioners with
``only``/``except``. An edit to a file only another source reads rebuilds
nothing; what Packer gets is narrowed the same way (the real Packer
validates it in integration/test_prebuild.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from support import shapes
from support.fakes import FakeTree
from support.project import copy_files, plan_rows
from tasks.core.graph import load_graph
from tasks.inputs import formats
from tasks.inputs.image import image_inputs

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures/ecs-ami"
COMMON = {"ecs/variables.pkr.hcl", "ecs/scripts/install-docker.sh"}
AL2023 = COMMON | {"ecs/al2023.pkr.hcl", "ecs/scripts/functions.sh", "ecs/scripts/cleanup.sh"}
EXPECTED = {
    "al2023": AL2023,
    "al2023arm": AL2023 | {"ecs/al2023arm.pkr.hcl", "ecs/scripts/al2023/arm-only.sh"},
    "al2023gpu": AL2023 | {"ecs/al2023gpu.pkr.hcl", "ecs/scripts/al2023/gpu/nvidia-kmod-load.sh",
                           "ecs/scripts/al2023/gpu/nvidia-kmod-load.service",
                           "ecs/scripts/al2023/gpu/install-nvidia-driver.sh"},
    "al2": COMMON | {"ecs/al2.pkr.hcl", "ecs/scripts/al2/install-kernel5dot10.sh"},
}


def ecs_tree(dest: Path) -> Path:
    shutil.copytree(FIXTURE, dest, dirs_exist_ok=True)
    return dest


def test_each_source_reads_only_its_files_builds_and_provisioners(tmp_path):
    graph = load_graph(ecs_tree(tmp_path))
    found = {name: set(image_inputs(graph, image).files) for name, image in graph.images.items()}
    assert found == EXPECTED


def test_packer_gets_only_what_the_source_builds(tmp_path):
    graph = load_graph(ecs_tree(tmp_path))
    template = image_inputs(graph, graph.images["al2023arm"]).template
    files, _ = formats.effective(template, regions=("us-west-2",), endpoint=None, sandbox=False,
                                 tags={}, only="amazon-ebs.al2023arm")
    assert sorted(files) == ["ecs/al2023.hcl.pkr.json", "ecs/al2023.pkr.hcl",
                             "ecs/al2023arm.hcl.pkr.json", "ecs/al2023arm.pkr.hcl",
                             "ecs/variables.hcl.pkr.json", "ecs/variables.pkr.hcl"]
    build_file = json.loads(files["ecs/al2023.hcl.pkr.json"])
    assert "source" not in build_file                   # al2023's own source is left out
    (build,) = build_file["build"]
    assert build["sources"] == ["source.amazon-ebs.al2023arm"]
    scripts = [next(iter(p.values())).get("script") for p in build["provisioner"]]
    assert scripts == [None, None, "scripts/install-docker.sh", "scripts/al2023/arm-only.sh",
                       "scripts/cleanup.sh"]
    assert all("except" not in next(iter(p.values())) for p in build["provisioner"])


def test_an_edit_to_a_file_only_another_source_reads_rebuilds_nothing(tmp_path):
    tree = FakeTree(copy_files(tmp_path / "repo", tree=ecs_tree))
    assert tree.doit("amis").returncode == 0
    for path, rebuilt in [("ecs/scripts/al2023/gpu/install-nvidia-driver.sh", {"al2023gpu"}),
                          ("ecs/al2023arm.pkr.hcl", {"al2023arm"}),
                          ("ecs/al2.pkr.hcl", {"al2"}),
                          ("ecs/scripts/install-docker.sh", set(EXPECTED))]:
        original = (tree.path / path).read_text()
        tree.write(path, original + "# an edit\n")
        rows = plan_rows(tree.doit("plan").stdout)
        assert {name for name, row in rows.items() if row.split()[1:2] == ["build"]} == rebuilt, \
            (path, rows)
        tree.write(path, original)


def test_a_json_templates_only_and_except_narrow_its_provisioners(tmp_path):
    builders = [{**shapes.EBS, "name": name, "ami_name": f"{name}-{{{{timestamp}}}}"}
                for name in ("small", "large")]
    data = {"variables": shapes.VARIABLES, "builders": builders,
            "provisioners": [{"type": "shell", "script": "both.sh"},
                             {"type": "shell", "script": "large.sh", "only": ["large"]},
                             {"type": "shell", "script": "small.sh", "except": ["large"]}]}
    shapes.write(tmp_path, {
        "amis.yaml": "region: eu-west-1\nsource: {name: centos, ami: ami-bb9a6bc2}\nimages:\n"
                     "  small: {parent: centos, template: t.json, only: small}\n"
                     "  large: {parent: centos, template: t.json, only: large}\n",
        "t.json": json.dumps(data), "both.sh": "", "large.sh": "", "small.sh": ""})
    graph = load_graph(tmp_path)
    assert set(image_inputs(graph, graph.images["small"]).files) == {"t.json", "both.sh",
                                                                     "small.sh"}
    inputs = image_inputs(graph, graph.images["large"])
    assert set(inputs.files) == {"t.json", "both.sh", "large.sh"}
    files, _ = formats.effective(inputs.template, regions=("eu-west-1",), endpoint=None,
                                 sandbox=False, tags={}, only="large")
    given = json.loads(files["t.json"])
    assert [p["script"] for p in given["provisioners"]] == ["both.sh", "large.sh"]


@pytest.mark.parametrize("only", ['["amazon-ebs.${var.x}"]', "var.which"])
def test_only_not_known_before_the_build_runs_for_every_source(tmp_path, only):
    graph = load_graph(ecs_tree(tmp_path))
    build = tmp_path / "ecs/al2023.pkr.hcl"
    build.write_text(build.read_text().replace('only   = ["amazon-ebs.al2023gpu"]',
                                               f"only   = {only}"))
    (tmp_path / "ecs/more.pkr.hcl").write_text(
        'variable "x" {\n  type    = string\n  default = "al2023gpu"\n}\n\n'
        'variable "which" {\n  type    = list(string)\n  default = []\n}\n')
    files = set(image_inputs(graph, graph.images["al2023arm"]).files)
    assert "ecs/scripts/al2023/gpu/install-nvidia-driver.sh" in files
