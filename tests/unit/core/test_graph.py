"""The image graph: conventions, order, and one-line errors for bad graphs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tasks.core.errors import AmiError
from tasks.core.graph import load_graph, parse_graph
from tasks.inputs.image import image_inputs

from support.project import ROOT

SOURCE = {"name": "centos", "ami": "ami-12345678"}
TEMPLATE = json.dumps({
    "variables": {"playbook": ""},
    "builders": [{"type": "amazon-ebs", "source_ami": "{{user `source_ami`}}"}],
    "provisioners": [{"type": "ansible", "playbook_file": "{{user `playbook`}}"}]})


def make_tree(root: Path, images: dict, files: list[str] | None = None) -> Path:
    for name in images:
        for rel in (f"packer/{name}_ami.json", f"ansible/{name}_ami.yaml"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("- hosts: all\n  roles: []\n" if rel.endswith("yaml") else
                                    TEMPLATE)
    for rel in files or []:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(rel)
    data = {"region": "eu-west-1", "source": SOURCE, "images": images}
    (root / "amis.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def error_of(root: Path) -> str:
    with pytest.raises(AmiError) as info:
        load_graph(root)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_conventions_and_parent_first_order(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "base", "regions": ["us-east-1", "eu-west-1"]},
                         "base": {"parent": "centos"}, "api": {"parent": "web"}})
    graph = load_graph(tmp_path)
    assert list(graph.images) == ["base", "web", "api"]
    web = graph.images["web"]
    assert (web.template, web.playbook) == ("packer/web_ami.json", "ansible/web_ami.yaml")
    assert web.regions == ("eu-west-1", "us-east-1")     # main region first
    assert graph.images["base"].regions == ("eu-west-1",)
    assert graph.descendants("base") == ["web", "api"]
    assert graph.ancestors("api") == ["web", "base", "centos"]
    assert graph.width == 1


def test_unknown_parent(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "bsae"}})
    assert error_of(tmp_path) == ("amis.yaml: image web: unknown parent 'bsae': declare it "
                                  "under 'images' or use the source 'centos'")


def test_cycle(tmp_path):
    make_tree(tmp_path, {"a": {"parent": "b"}, "b": {"parent": "c"}, "c": {"parent": "a"}})
    message = error_of(tmp_path)
    assert message.startswith("amis.yaml: image a: parent cycle a -> b -> c -> a")


def test_the_conventional_template_is_hcl2_first_then_json(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos"}})
    assert load_graph(tmp_path).images["web"].template == "packer/web_ami.json"
    (tmp_path / "packer/web_ami.pkr.hcl").write_text('source "amazon-ebs" "web" {}\n')
    assert load_graph(tmp_path).images["web"].template == "packer/web_ami.pkr.hcl"


@pytest.mark.parametrize("spec, missing", [
    ({}, "packer/web_ami.pkr.hcl"),
    ({"playbook": "ansible/other.yaml"}, "ansible/other.yaml"),
    ({"packer_dir": "packer/linux"}, "packer/linux"),
])
def test_missing_template_playbook_or_packer_dir(tmp_path, spec, missing):
    make_tree(tmp_path, {"web": {"parent": "centos", **spec}})
    if missing.startswith("packer/web_ami"):
        (tmp_path / "packer/web_ami.json").unlink()
    message = error_of(tmp_path)
    assert message.startswith("amis.yaml: image web: ") and f"{missing} does not exist" in message


def test_an_image_needs_no_playbook(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos"}})
    (tmp_path / "ansible/web_ami.yaml").unlink()
    assert load_graph(tmp_path).images["web"].playbook is None


def test_duplicate_name(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos"}})
    text = (tmp_path / "amis.yaml").read_text()
    (tmp_path / "amis.yaml").write_text(text + "  web:\n    parent: centos\n")
    assert "duplicate key 'web'" in error_of(tmp_path)


@pytest.mark.parametrize("name", ["Web", "we b", "../etc", "a/b", "a.b", ""])
def test_unsafe_names(tmp_path, name):
    make_tree(tmp_path, {"web": {"parent": "centos"}})
    data = yaml.safe_load((tmp_path / "amis.yaml").read_text())
    data["images"][name] = {"parent": "centos"}
    (tmp_path / "amis.yaml").write_text(yaml.safe_dump(data))
    assert f"image {name!r}: names must match [a-z0-9_-]+" in error_of(tmp_path)


@pytest.mark.parametrize("key, value, expected", [
    ("template", "../outside.json", "must be a path inside the repository"),
    ("template", "/etc/passwd", "must be a path inside the repository"),
    ("regions", ["mars-1"], "is not an AWS region name (e.g. eu-west-1)"),
    ("regions", ["us-east-1x"], "region 'us-east-1x' is not an AWS region name: did you mean "
                                "us-east-1?"),
    ("parnet", "centos", "unknown key 'parnet'; did you mean 'parent'? known keys: "),
    ("vars", {"bad name": 1}, "is not a valid Packer variable name"),
])
def test_bad_image_settings(tmp_path, key, value, expected):
    make_tree(tmp_path, {"web": {"parent": "centos", key: value}})
    message = error_of(tmp_path)
    assert message.startswith("amis.yaml: image web: ") and expected in message


def test_source_needs_ami_or_filter(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos"}})
    data = yaml.safe_load((tmp_path / "amis.yaml").read_text())
    data["source"] = {"name": "centos", "owners": ["123"]}
    (tmp_path / "amis.yaml").write_text(yaml.safe_dump(data))
    assert "source centos: needs 'ami'" in error_of(tmp_path)


def test_invalid_yaml_names_file_and_line(tmp_path):
    (tmp_path / "amis.yaml").write_text("region: eu-west-1\nimages: [\n")
    message = error_of(tmp_path)
    assert "amis.yaml" in message and "line" in message


def test_missing_graph_file(tmp_path):
    assert "amis.yaml: file not found" in error_of(tmp_path)


def test_graph_must_be_mapping(tmp_path):
    with pytest.raises(AmiError, match="must be a mapping"):
        parse_graph(["x"], tmp_path / "amis.yaml", tmp_path)


# -- inputs ------------------------------------------------------------------

def test_inputs_follow_playbook_roles_meta_and_include_role(tmp_path):
    files = ["ansible/roles/a/tasks/main.yml", "ansible/roles/a/templates/x.j2",
             "ansible/roles/b/defaults/main.yml", "ansible/roles/c/tasks/main.yml",
             "ansible/roles/unused/tasks/main.yml", "ansible/group_vars/all.yml",
             "ansible/vars/web.yml", "extra/cloud.cfg", "packer/web.vars.json"]
    make_tree(tmp_path, {"web": {"parent": "centos", "var_files": ["packer/web.vars.json"],
                                 "extra_inputs": ["extra/*.cfg"]}}, files)
    (tmp_path / "packer/web.vars.json").write_text('{"instance_type": "t3.small"}')
    (tmp_path / "ansible/web_ami.yaml").write_text(
        "- hosts: all\n  roles:\n    - role: a\n")
    (tmp_path / "ansible/roles/a/meta").mkdir()
    (tmp_path / "ansible/roles/a/meta/main.yml").write_text("dependencies:\n  - role: b\n")
    (tmp_path / "ansible/roles/a/tasks/main.yml").write_text(
        "- block:\n    - ansible.builtin.include_role:\n        name: c\n")
    graph = load_graph(tmp_path)
    assert list(image_inputs(graph, graph.images["web"]).files) == [
        "ansible/group_vars/all.yml",
        "ansible/roles/a/meta/main.yml", "ansible/roles/a/tasks/main.yml",
        "ansible/roles/a/templates/x.j2", "ansible/roles/b/defaults/main.yml",
        "ansible/roles/c/tasks/main.yml", "ansible/vars/web.yml", "ansible/web_ami.yaml",
        "extra/cloud.cfg", "packer/web.vars.json", "packer/web_ami.json",
    ]


def test_templated_role_name_is_an_error(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos"}})
    (tmp_path / "ansible/web_ami.yaml").write_text("- hosts: all\n  roles:\n    - '{{ r }}'\n")
    graph = load_graph(tmp_path)
    with pytest.raises(AmiError, match="cannot be resolved before the build"):
        image_inputs(graph, graph.images["web"])


def test_extra_input_matching_nothing_is_an_error(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos", "extra_inputs": ["nothing/*"]}})
    graph = load_graph(tmp_path)
    with pytest.raises(AmiError, match="image web: extra_inputs 'nothing/\\*' matches no file"):
        image_inputs(graph, graph.images["web"])


def test_example_tree_role_precision():
    """The repository's own tree: the Buildkite role feeds build and deploy only."""
    graph = load_graph(ROOT)
    users = [n for n, i in graph.images.items()
             if "ansible/roles/buildkite_agent/tasks/main.yml" in image_inputs(graph, i).files]
    assert users == ["build", "deploy"]


def test_an_own_template_beside_a_default_one_is_refused(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos"}}, files=["packer/shared/a.pkr.hcl"])
    text = (tmp_path / "amis.yaml").read_text()
    (tmp_path / "amis.yaml").write_text(text + "defaults:\n  template: packer/shared\n")
    assert error_of(tmp_path) == (
        "amis.yaml: image web: packer/web_ami.json exists, but the image builds from "
        "packer/shared (defaults:): set 'template: packer/web_ami.json' or remove the file")
    (tmp_path / "packer/web_ami.json").unlink()
    assert load_graph(tmp_path).images["web"].template == "packer/shared"


def test_a_key_that_is_a_mapping_is_one_line(tmp_path):
    (tmp_path / "amis.yaml").write_text("{{}}")
    assert error_of(tmp_path).endswith("amis.yaml: a key that is a list or mapping (line 1): "
                                       "keys are names")


@pytest.mark.parametrize("value", [5, True, "123456789012x", [True]])
def test_share_with_that_is_not_a_list_of_accounts_is_one_line(tmp_path, value):
    make_tree(tmp_path, {"base": {"parent": "centos", "share_with": value}})
    assert "share_with" in error_of(tmp_path)


def test_a_file_name_too_long_for_the_filesystem_is_one_line(tmp_path):
    make_tree(tmp_path, {"base": {"parent": "centos", "playbook": "ansible/" + "p" * 300 + ".yml"}})
    graph = None
    try:
        graph = load_graph(tmp_path)
        image_inputs(graph, graph.images["base"])
    except AmiError as err:
        assert "\n" not in str(err) and "p" * 20 in str(err)
        return
    pytest.fail(f"accepted: {graph}")


def test_every_problem_of_amis_yaml_is_named_at_once(tmp_path):
    make_tree(tmp_path, {"web": {"parent": "centos", "regions": ["us-east-1x"]},
                         "worker": {"parent": "centos", "parnet": "x"}})
    data = yaml.safe_load((tmp_path / "amis.yaml").read_text())
    data["region"] = "eu-west-1x"
    (tmp_path / "amis.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(AmiError) as info:
        load_graph(tmp_path)
    problems = info.value.problems
    assert len(problems) == 3, problems
    assert problems[0] == ("amis.yaml: 'region' 'eu-west-1x' is not an AWS region name: did "
                           "you mean eu-west-1?")
    assert "image web: region 'us-east-1x' is not an AWS region name: did you mean us-east-1?" \
        in problems[1]
    assert "image worker: unknown key 'parnet'; did you mean 'parent'?" in problems[2]
