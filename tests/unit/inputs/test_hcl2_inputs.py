"""HCL2 inputs in process, in the shapes an adversary brings: every file
Packer 1.6 would read is an input, and what cannot be known before the
build is refused with one line."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from support import shapes
from tasks.inputs.hcl import effective as hcl_effective, parse as hcl_parse
from tasks.core.errors import AmiError
from tasks.core.graph import load_graph
from tasks.inputs.image import image_inputs

GRAPH = """\
region: eu-west-1
source: {name: centos, ami: ami-bb9a6bc2}
images:
  t:
    parent: centos
    template: packer/t
"""
SCRIPT_VAR = 'variable "script" {\n  type    = string\n  default = "packer/t/default.sh"\n}\n'
SHELL_LOCAL = ('build {\n  sources = ["source.amazon-ebs.t"]\n\n'
               '  provisioner "shell-local" {\n    script = var.script\n  }\n}\n')


def tree(root: Path, files: dict[str, str], graph: str = GRAPH) -> Path:
    shapes.write(root, {"amis.yaml": graph,
                        "packer/t/variables.pkr.hcl": shapes.HCL_VARIABLES,
                        "packer/t/source.pkr.hcl": shapes.HCL_SOURCE.replace("NAME", "t"),
                        "packer/t/default.sh": "#!/bin/sh\n", **files})
    return root


def inputs(root: Path, image: str = "t"):
    graph = load_graph(root)
    return image_inputs(graph, graph.images[image])


def refusal(root: Path) -> str:
    with pytest.raises(AmiError) as info:
        inputs(root)
    assert all("\n" not in p for p in info.value.problems)
    return "\n".join(info.value.problems)


def test_a_var_file_value_that_is_an_expression_is_refused(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": SCRIPT_VAR + SHELL_LOCAL,
                    "packer/t/my.pkrvars.hcl": 'script = "/tmp/${"outside.sh"}"\n'},
         GRAPH + "    var_files: [packer/t/my.pkrvars.hcl]\n")
    assert "script '${var.script}': cannot be resolved before the build (variable script is " \
           "only known during the build)" in refusal(tmp_path)


@pytest.mark.parametrize("name, text", [
    ("site.auto.pkrvars.json", '{"script": "packer/t/other.sh"}'),
    ("site.auto.pkrvars.hcl", 'script = "packer/t/other.sh"\n'),
])
def test_auto_var_files_of_either_syntax_are_inputs_and_set_values(tmp_path, name, text):
    tree(tmp_path, {"packer/t/build.pkr.hcl": SCRIPT_VAR + SHELL_LOCAL, f"packer/t/{name}": text,
                    "packer/t/other.sh": "#!/bin/sh\n"})
    files = inputs(tmp_path).files
    assert f"packer/t/{name}" in files and "packer/t/other.sh" in files
    assert "packer/t/default.sh" not in files


def test_a_source_block_inside_build_is_walked(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": (
        'build {\n  source "amazon-ebs.t" {\n    user_data_file = "${path.root}/ud.txt"\n'
        '    user_data = file("${path.root}/ud2.txt")\n  }\n}\n'),
        "packer/t/ud.txt": "a", "packer/t/ud2.txt": "b"})
    files = inputs(tmp_path).files
    assert {"packer/t/ud.txt", "packer/t/ud2.txt"} <= set(files)


def test_a_provisioner_override_is_walked_and_an_absolute_one_refused(tmp_path):
    build = ('build {\n  sources = ["source.amazon-ebs.t"]\n\n  provisioner "shell-local" {\n'
             '    script   = "${path.root}/ok.sh"\n    override = {\n'
             '      t = {\n        script = "SCRIPT"\n      }\n    }\n  }\n}\n')
    tree(tmp_path, {"packer/t/build.pkr.hcl": build.replace("SCRIPT", "${path.root}/t.sh"),
                    "packer/t/ok.sh": "", "packer/t/t.sh": ""})
    files = inputs(tmp_path).files
    assert files["packer/t/t.sh"] == "packer/t provisioner 1 (shell-local) override t script"
    assert "packer/t/ok.sh" in files
    tree(tmp_path, {"packer/t/build.pkr.hcl": build.replace("SCRIPT", "/tmp/outside.sh")})
    assert "override t script '/tmp/outside.sh': an absolute path" in refusal(tmp_path)


def test_pkr_json_lists_of_bodies_and_spaced_calls(tmp_path):
    (tmp_path / "packer/t").mkdir(parents=True)
    tree(tmp_path, {"packer/t/build.pkr.json": json.dumps({"build": {
        "sources": ["source.amazon-ebs.t"],
        "provisioner": {"shell-local": [{"script": "${path.root}/one.sh"},
                                        {"inline": ["echo ${file (\"${path.root}/motd\")}"]}]}}}),
                    "packer/t/one.sh": "", "packer/t/motd": ""})
    files = inputs(tmp_path).files
    assert {"packer/t/one.sh", "packer/t/motd"} <= set(files)


def test_file_calls_anywhere_are_inputs_and_relative_ones_start_at_the_template(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": (
        'variable "v" {\n  type = string\n  default = "x"\n  validation {\n'
        '    condition     = var.v != trimspace(file("flag"))\n    error_message = "no."\n  }\n}\n'
        'build {\n  sources = ["source.amazon-ebs.t"]\n\n  provisioner "shell-local" {\n'
        '    inline = ["echo see file(README) ${fileexists("${path.root}/maybe") ? 1 : 0}"]\n'
        '  }\n}\n'), "packer/t/flag": "", "packer/t/maybe": "", "flag": "decoy"})
    files = inputs(tmp_path).files
    assert files["packer/t/flag"] == "packer/t/build.pkr.hcl file()"
    assert files["packer/t/maybe"] == "packer/t/build.pkr.hcl fileexists()"
    assert "flag" not in files and "README" not in files


@pytest.mark.parametrize("script, message", [
    ('"./${path.root}/x.sh"', "a path may only begin with the template's folder"),
    ('"%{if true}${path.root}%{endif}/x.sh"', "%{if true} is only known during the build"),
])
def test_paths_that_cannot_be_followed_are_one_line(tmp_path, script, message):
    tree(tmp_path, {"packer/t/build.pkr.hcl": SHELL_LOCAL.replace("var.script", script),
                    "packer/t/x.sh": ""})
    assert message in refusal(tmp_path)


def test_a_download_is_not_a_local_file(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": (
        'build {\n  sources = ["source.amazon-ebs.t"]\n\n  provisioner "file" {\n'
        '    direction   = "download"\n    source      = "/var/log/cloud-init.log"\n'
        '    destination = "logs/"\n  }\n}\n')})
    assert "packer/t/build.pkr.hcl" in inputs(tmp_path).files


def test_a_file_name_that_is_not_utf8_is_one_line(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": SHELL_LOCAL.replace("var.script", '"x"')})
    (tmp_path / os.fsdecode(b"packer/t/\xff.auto.pkrvars.hcl")).write_text("")
    assert refusal(tmp_path) == "packer/t/\\xff.auto.pkrvars.hcl: the file name is not valid " \
                                "UTF-8: rename it"


def test_vars_the_template_does_not_declare_are_refused(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": SCRIPT_VAR + SHELL_LOCAL},
         GRAPH + "    vars: {instnace_type: t3.large}\n")
    assert refusal(tmp_path) == (
        "amis.yaml: image t: vars: instnace_type is not a variable packer/t declares, so Packer "
        "would never see it: declare it in the template or remove it")


def test_the_effective_configuration_is_json_syntax_with_every_string_intact(tmp_path):
    inline = 'echo \\"${var.image}\\" done ${upper("}")}'
    tree(tmp_path, {"packer/t/build.pkr.hcl": (
        'build {\n  sources = ["source.amazon-ebs.t"]\n\n  provisioner "shell-local" {\n'
        f'    inline = ["{inline}"]\n  }}\n}}\n')})
    template = inputs(tmp_path).template
    files, _ = hcl_effective.effective(list(template.documents), regions=("eu-west-1", "us-east-1"),
                                       endpoint=None, sandbox=True, tags={"Image": "t"},
                                       drop=lambda kind: False)
    assert files["packer/t/build.pkr.hcl"] is None
    build = json.loads(files["packer/t/build.hcl.pkr.json"])
    assert build["build"][0]["provisioner"][0]["shell-local"]["inline"] == [
        'echo "${var.image}" done ${upper("}")}']
    source = json.loads(files["packer/t/source.hcl.pkr.json"])["source"][0]["amazon-ebs"]["t"]
    assert source["ami_regions"] == ["us-east-1"] and source["tags"] == {"Image": "t"}
    variables = json.loads(files["packer/t/variables.hcl.pkr.json"])["variable"]
    assert variables[0]["region"]["type"] == "string"


def test_a_template_that_wants_a_playbook_says_so(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": 'variable "playbook" {\n  type = string\n}\n'
                    + SHELL_LOCAL.replace("var.script", '"${path.root}/default.sh"')})
    assert refusal(tmp_path) == (
        "amis.yaml: image t: packer/t needs a playbook (variable playbook has no default) and "
        "the image has none: create ansible/t_ami.yaml or set playbook:")


def test_a_template_named_unlike_any_packer_reads_is_one_line(tmp_path):
    tree(tmp_path, {"packer/t.hcl": shapes.HCL_SOURCE.replace("NAME", "t")},
         GRAPH.replace("template: packer/t", "template: packer/t.hcl"))
    assert refusal(tmp_path) == ("packer/t.hcl (image t): a template's name ends in .pkr.hcl, "
                                 ".pkr.json or .json (what Packer reads): rename it")


def test_a_local_list_of_scripts_is_followed(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": (
        'locals {\n  scripts = ["${path.root}/a.sh", "${path.root}/b.sh"]\n  more = local.scripts\n}\n'
        + SHELL_LOCAL.replace("script = var.script", "scripts = local.more")),
        "packer/t/a.sh": "", "packer/t/b.sh": ""})
    assert {"packer/t/a.sh", "packer/t/b.sh"} <= set(inputs(tmp_path).files)


def _effective(root: Path, **options):
    template = inputs(root).template
    settings = {"regions": ("eu-west-1",), "endpoint": None, "sandbox": False,
                "tags": {"Image": "t"}, "drop": lambda kind: False, **options}
    files, dropped = hcl_effective.effective(list(template.documents), **settings)
    return {k: json.loads(v) for k, v in files.items() if v is not None}, dropped


def test_strings_keep_their_meaning_in_json_syntax(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": '''locals {
  type    = var.region
  counted = "n=${length("\\\\n")}"
  slash   = "x-${replace(var.region, "/", "\\\\")}"
  cron    = <<EOT
* * * * * root /bin/true
EOT
  flush   = <<-EOT
    a
      b
    EOT
  tagged  = { type = upper("x") }
}
'''})
    files, _ = _effective(tmp_path)
    local = files["packer/t/build.hcl.pkr.json"]["locals"][0]
    assert local["type"] == "${var.region}" and local["tagged"] == {"type": '${upper("x")}'}
    assert local["counted"] == 'n=${length("\\\\n")}'      # the escape is the expression's
    assert local["slash"] == 'x-${replace(var.region, "/", "\\\\")}'
    assert local["cron"] == "* * * * * root /bin/true\n" and local["flush"] == "a\n  b\n"


def test_added_fields_go_where_a_source_inside_build_already_sets_them(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": (
        'build {\n  source "source.amazon-ebs.t" {\n    tags = { Role = "web" }\n  }\n}\n')})
    files, _ = _effective(tmp_path, sandbox=True, regions=("eu-west-1", "us-east-1"))
    top = files["packer/t/source.hcl.pkr.json"]["source"][0]["amazon-ebs"]["t"]
    inner = files["packer/t/build.hcl.pkr.json"]["build"][0]["source"][0]["source.amazon-ebs.t"]
    assert "tags" not in top and inner["tags"] == {"Role": "web", "Image": "t"}
    assert top["snapshot_tags"] == {"Image": "t"} and top["communicator"] == "none"
    assert top["ami_regions"] == ["us-east-1"]


def test_each_type_of_a_json_provisioner_object_is_its_own_provisioner(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.json": json.dumps({"build": {
        "sources": ["source.amazon-ebs.t"],
        "provisioner": {"shell-local": {"inline": ["echo local"]},
                        "shell": [{"inline": ["echo a"]}, {"inline": ["echo b"]}]}}})})
    files, dropped = _effective(tmp_path, sandbox=True, drop=lambda kind: kind == "shell")
    assert dropped == ["provisioner 2 (shell)", "provisioner 3 (shell)"]
    assert files["packer/t/build.pkr.json"]["build"]["provisioner"] == [
        {"shell-local": {"inline": ["echo local"]}}]


@pytest.mark.parametrize("files, message", [
    ({"packer/t/build.pkr.hcl": 'locals {\n  s = fileset(path.root, "../common/*.sh")\n}\n'},
     'packer/t/build.pkr.hcl: fileset(path.root, "../common/*.sh"): the pattern leaves the folder'),
    ({"packer/t/x.pkr.hcl": 'source "amazon-ebs" {\n  region = "eu-west-1"\n}\n'},
     'packer/t/x.pkr.hcl: source "amazon-ebs" needs a type and a name'),
    ({"packer/t/source.hcl.pkr.json": "{}"},
     "packer/t/source.hcl.pkr.json: the name the build gives packer/t/source.pkr.hcl's "
     "JSON-syntax copy: rename it"),
])
def test_what_the_build_could_not_follow_is_one_line(tmp_path, files, message):
    tree(tmp_path, files)
    assert message in refusal(tmp_path)


def test_a_byte_order_mark_is_not_hcl(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": "\ufeff" + SCRIPT_VAR})
    assert inputs(tmp_path).template.variables["script"] == "packer/t/default.sh"


def test_strings_in_a_sensitive_map_are_masked(tmp_path):
    from tasks.inputs.template import sensitive_values
    tree(tmp_path, {"packer/t/secret.pkr.hcl": (
        'variable "m" {\n  type      = map(string)\n  default   = { pass = "hunter2" }\n'
        '  sensitive = true\n}\n')})
    assert sensitive_values(inputs(tmp_path).template, {}, {}) == ["hunter2"]


def test_a_run_parses_each_hcl2_file_once_per_content(tmp_path, monkeypatch):
    from tasks.cli.compose import App
    tree(tmp_path, {"packer/t/build.pkr.hcl": SCRIPT_VAR + SHELL_LOCAL})
    graph = GRAPH + "  u:\n    parent: centos\n    template: packer/t\n"
    (tmp_path / "amis.yaml").write_text(graph)
    parsed = []
    real = hcl_parse.parse_text
    monkeypatch.setattr(hcl_parse, "parse_text", lambda rel, *a: parsed.append(rel) or real(rel, *a))
    first = App.load(tmp_path, {}).checkout.inputs()
    assert sorted(parsed) == ["packer/t/build.pkr.hcl", "packer/t/source.pkr.hcl",
                              "packer/t/variables.pkr.hcl"]      # two images, one parse each
    parsed.clear()
    again = App.load(tmp_path, {}).checkout.inputs()                      # a later run: kept forms
    assert parsed == [] and again["t"].template.variables == first["t"].template.variables
    (tmp_path / "packer/t/build.pkr.hcl").write_text(SCRIPT_VAR.replace("default.sh", "x.sh")
                                                     + SHELL_LOCAL)
    (tmp_path / "packer/t/x.sh").write_text("")
    for kept in (tmp_path / ".amis/hcl").iterdir():
        kept.write_text("{not json")                             # a damaged one is parsed again
    assert App.load(tmp_path, {}).checkout.inputs()["u"].template.variables["script"] == "packer/t/x.sh"
    assert len(parsed) == 3


DYNAMIC = '''locals {
  uploads = { "90_ecs.cfg" = "files/90_ecs.cfg", "banner" = "files/banner.sh" }
}
build {
  sources = ["source.amazon-ebs.t"]
  provisioner "shell-local" {
    inline = ["echo first"]
  }
  dynamic "provisioner" {
    labels   = ["file"]
    for_each = FOR_EACH
    iterator = up
    content {
      source      = up.value
      destination = "/tmp/${up.key}"
    }
  }
}
'''


def test_files_named_only_in_a_dynamic_provisioner_are_inputs(tmp_path):
    # amazon-ecs-ami's shape: uploads named only in dynamic "provisioner" blocks
    tree(tmp_path, {"packer/t/build.pkr.hcl": DYNAMIC.replace("FOR_EACH", "local.uploads"),
                    "files/90_ecs.cfg": "x\n", "files/banner.sh": "echo\n"})
    found = inputs(tmp_path).files
    assert found["files/90_ecs.cfg"].startswith("packer/t dynamic provisioner 1 (file) [90_ecs.cfg]")
    assert "files/banner.sh" in found


def test_a_literal_list_for_each_is_expanded_with_its_index_as_key(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": DYNAMIC.replace(
        "FOR_EACH", '["files/a.sh"]'), "files/a.sh": ""})
    assert inputs(tmp_path).files["files/a.sh"].startswith("packer/t dynamic provisioner 1 (file) [0]")


@pytest.mark.parametrize("for_each, message", [
    ("var.uploads", 'dynamic "provisioner" for_each = var.uploads is not known before the build'),
    ('{ a = { src = "files/a.sh" } }', 'dynamic "provisioner" for_each holds more than strings'),
])
def test_a_dynamic_provisioner_whose_files_cannot_be_known_is_one_line(tmp_path, for_each, message):
    text = DYNAMIC.replace("FOR_EACH", for_each)
    text = 'variable "uploads" {\n  type = map(string)\n  default = {}\n}\n' + text
    tree(tmp_path, {"packer/t/build.pkr.hcl": text})
    assert message in refusal(tmp_path)


def test_a_dynamic_source_in_a_build_is_one_line(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": (
        'build {\n  dynamic "source" {\n    for_each = ["a"]\n    labels = ["amazon-ebs.t"]\n'
        '    content {}\n  }\n}\n')})
    assert 'packer/t/build.pkr.hcl: dynamic "source" in a build block is not supported' \
        in refusal(tmp_path)


def test_the_sandbox_leaves_out_dynamic_provisioners_that_need_an_instance(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": DYNAMIC.replace("FOR_EACH", "local.uploads"),
                    "files/90_ecs.cfg": "", "files/banner.sh": ""})
    files, dropped = _effective(tmp_path, sandbox=True, drop=lambda kind: kind == "file")
    assert dropped == ["dynamic provisioner 1 (file)"]
    build = files["packer/t/build.hcl.pkr.json"]["build"][0]
    assert "dynamic" not in build and build["provisioner"][0]["shell-local"]["inline"] == ["echo first"]
    kept, _ = _effective(tmp_path)
    assert kept["packer/t/build.hcl.pkr.json"]["build"][0]["dynamic"][0]["provisioner"]["labels"] == ["file"]


@pytest.mark.parametrize("source, message", [
    # image-builder's shape: the newest image of a filter, not the parent
    (shapes.HCL_SOURCE.replace("  source_ami    = var.source_ami\n",
                               '  source_ami_filter {\n    owners = ["099720109477"]\n'
                               '    most_recent = true\n  }\n'),
     "packer/t/source.pkr.hcl:3: source 1 (amazon-ebs): source_ami_filter chooses the AMI image t is built on, "
     "but it builds on its parent centos: remove source_ami_filter and set source_ami = "
     "var.source_ami"),
    (shapes.HCL_SOURCE.replace("var.source_ami", '"ami-0123456789abcdef0"'),
     "packer/t/source.pkr.hcl:3: source 1 (amazon-ebs): source_ami = 'ami-0123456789abcdef0' "
     "is not the AMI of "
     "image t's parent centos"),
    (shapes.HCL_SOURCE.replace("  source_ami    = var.source_ami\n", ""),
     "packer/t: no source sets source_ami, so image t would not be built on its parent centos"),
])
def test_an_image_builds_on_its_parent_or_is_refused(tmp_path, source, message):
    tree(tmp_path, {"packer/t/source.pkr.hcl": source.replace("NAME", "t")})
    assert message in refusal(tmp_path)


def test_a_local_holding_the_parent_is_the_parent(tmp_path):
    tree(tmp_path, {"packer/t/source.pkr.hcl": 'locals {\n  base = var.source_ami\n}\n'
                    + shapes.HCL_SOURCE.replace("NAME", "t").replace("var.source_ami", "local.base")})
    assert "packer/t/source.pkr.hcl" in inputs(tmp_path).files


TWO_SOURCES = {"packer/t/source.pkr.hcl": shapes.HCL_SOURCE.replace("NAME", "t")
               + shapes.HCL_SOURCE.replace("NAME", "arm").replace(
                   "var.source_ami", '"ami-0123456789abcdef0"'),
               "packer/t/build.pkr.hcl": 'build {\n  sources = ["source.amazon-ebs.t", '
                                         '"source.amazon-ebs.arm"]\n}\n'}


def test_a_template_of_several_sources_needs_the_image_to_name_one(tmp_path):
    # amazon-ecs-ami's shape: many sources in one folder, upstream picks one with -only
    tree(tmp_path, TWO_SOURCES)
    assert "amis.yaml: image t: packer/t has 2 sources (amazon-ebs.arm, amazon-ebs.t), each " \
           "making an AMI: name the one it builds, e.g. only: amazon-ebs.arm" in refusal(tmp_path)


def test_only_names_the_source_an_image_builds_and_is_in_its_digest(tmp_path):
    tree(tmp_path, TWO_SOURCES, GRAPH + "    only: amazon-ebs.t\n")
    graph = load_graph(tmp_path)
    found = inputs(tmp_path)
    assert [b.name for b in found.template.blocks if b.kind == "source"] == ["amazon-ebs.t"]
    assert graph.images["t"].settings(False)["only"] == "amazon-ebs.t"
    tree(tmp_path, TWO_SOURCES, GRAPH + "    only: amazon-ebs.arm\n")
    assert "(amazon-ebs): source_ami = 'ami-0123456789abcdef0' is not the AMI" \
        in refusal(tmp_path)
    tree(tmp_path, TWO_SOURCES, GRAPH + "    only: amazon-ebs.x86\n")
    assert "amis.yaml: image t: only: amazon-ebs.x86 is not a source of packer/t " \
           "(amazon-ebs.arm, amazon-ebs.t)" in refusal(tmp_path)


FLAVOR = 'variable "flavor" {\n  type    = string\n  default = env("FLAVOR")\n}\n'


def test_a_variable_read_from_the_environment_must_be_declared(tmp_path):
    tree(tmp_path, {"packer/t/flavor.pkr.hcl": FLAVOR})
    assert refusal(tmp_path) == (
        "packer/t: variable flavor defaults to environment variable FLAVOR, which changes what "
        "is built: declare it under env_inputs: of image t in amis.yaml (the hash of its value "
        "goes into the digest), or set the value in a var file")


def test_a_declared_environment_variable_is_in_the_digest_by_its_hash(tmp_path):
    from tasks.core.settings import load_settings
    from tasks.core.digest import Hasher
    from tasks.adapters.fakes import FakeGit
    from tasks.state.checkout import Checkout
    tree(tmp_path, {"packer/t/flavor.pkr.hcl": FLAVOR}, GRAPH + "    env_inputs: [FLAVOR]\n")
    graph = load_graph(tmp_path)
    seen = {}
    for value in ("alpha", "beta"):
        settings = load_settings(tmp_path, env={"AMI_BUCKET": "test-amis", "FLAVOR": value})
        seen[value] = Checkout(settings, graph, Hasher(), FakeGit()).digest_settings("t")["env"]["FLAVOR"]
    assert seen["alpha"] != seen["beta"] and "alpha" not in seen["alpha"]
    assert len(seen["alpha"]) == 64


@pytest.mark.parametrize("call", ['vault("/secret/data/x", "key")',
                                  'aws_secretsmanager("db", "password")'])
def test_a_secret_store_read_is_refused(tmp_path, call):
    tree(tmp_path, {"packer/t/secret.pkr.hcl": f'locals {{\n  s = {call}\n}}\n'})
    name = call.split("(")[0]
    assert refusal(tmp_path).startswith(f"packer/t: {name}() reads a secret store during the "
                                        "build: what it returns changes the image")


@pytest.mark.parametrize("call", ['file(pathexpand("~/.aws/credentials"))',
                                  'file(abspath("x"))', 'file(format("%s", "x"))',
                                  "file(var.secret_file)"])
def test_a_file_path_not_known_before_the_build_is_refused(tmp_path, call):
    tree(tmp_path, {"packer/t/read.pkr.hcl":
                    'variable "secret_file" {\n  type = string\n}\n'
                    f'locals {{\n  s = {call}\n}}\n'})
    message = refusal(tmp_path)
    assert "cannot be resolved before the build" in message and "write the path literally" \
        in message, message


def test_a_file_path_with_a_known_folder_is_accepted_only_when_declared(tmp_path):
    files = {"packer/t/read.pkr.hcl": 'variable "os" {\n  type = string\n}\n'
             'locals {\n  s = file("${path.root}/conf/${var.os}.conf")\n}\n',
             "packer/t/os.pkrvars.hcl": 'os = lower("LINUX")\n',
             "packer/t/conf/linux.conf": ""}
    # the conf files are inputs of the folder, but not declared
    tree(tmp_path, files, GRAPH + "    var_files: [packer/t/os.pkrvars.hcl]\n")
    assert 'e.g. extra_inputs: ["packer/t/conf/*.conf"]' in refusal(tmp_path)
    tree(tmp_path, files, GRAPH + "    var_files: [packer/t/os.pkrvars.hcl]\n"
         '    extra_inputs: ["packer/t/conf/*.conf"]\n')
    assert "packer/t/conf/linux.conf" in inputs(tmp_path).files


def test_an_empty_path_is_no_path(tmp_path):
    # image-builder's shape: user_data_file defaulting to ""
    tree(tmp_path, {"packer/t/ud.pkr.hcl": 'variable "user_data_file" {\n  type    = string\n'
                    '  default = ""\n}\n',
                    "packer/t/build.pkr.hcl": 'build {\n  source "source.amazon-ebs.t" {\n'
                    '    user_data_file = var.user_data_file\n  }\n}\n',
                    "packer/t/unrelated/big.bin": "x"})
    assert "packer/t/unrelated/big.bin" not in inputs(tmp_path).files


@pytest.mark.parametrize("extra, what", [
    ('data "amazon-ami" "base" {\n  owners = ["self"]\n}\n', "data sources"),
    (None, "amazon-ebs metadata_options"),
    (None, "a gp3 volume without throughput and iops"),
    ('build {\n  sources = ["source.amazon-ebs.t"]\n  provisioner "file" {\n'
     '    content     = "x"\n    destination = "/tmp/x"\n  }\n}\n',
     "the file provisioner's content"),
])
def test_what_packer_1_6_6_cannot_run_is_named_before_any_build(tmp_path, extra, what):
    source = shapes.HCL_SOURCE.replace("NAME", "t")
    if what == "amazon-ebs metadata_options":
        source = source.replace('  instance_type = "t3.small"\n', '  instance_type = "t3.small"\n'
                                '  metadata_options {\n    http_tokens = "required"\n  }\n')
    if what.startswith("a gp3"):
        source = source.replace('  instance_type = "t3.small"\n', '  instance_type = "t3.small"\n'
                                '  launch_block_device_mappings {\n    device_name = "/dev/xvda"\n'
                                '    volume_type = "gp3"\n  }\n')
    tree(tmp_path, {"packer/t/source.pkr.hcl": source, **({"packer/t/extra.pkr.hcl": extra}
                                                          if extra else {})})
    newer = [w for _, w in inputs(tmp_path).template.newer]
    assert what in newer


def test_a_fixed_ami_name_is_refused_with_the_fix(tmp_path):
    tree(tmp_path, {"packer/t/source.pkr.hcl": shapes.HCL_SOURCE.replace("NAME", "t").replace(
        '"${var.image}-${uuidv4()}"', '"${var.image}-base"')})
    assert refusal(tmp_path) == (
        "packer/t/source.pkr.hcl:6: source 1 (amazon-ebs): ami_name = '${var.image}-base' is the "
        "same on every build, so the second build fails (AMI names are unique): add "
        '${uuidv4()} to it, or ${var.build_time} with a variable "build_time" declared (the '
        "tree sets it)")
    variables = tmp_path / "packer/t/variables.pkr.hcl"
    variables.write_text(variables.read_text() + 'variable "build_time" {\n  type = string\n}\n')
    assert refusal(tmp_path).endswith("add ${var.build_time} or ${uuidv4()} to it")


def test_goss_test_files_are_inputs(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl": 'build {\n  sources = ["source.amazon-ebs.t"]\n'
                    '  provisioner "goss" {\n    tests     = ["${path.root}/goss/web.yaml"]\n'
                    '    vars_file = "${path.root}/goss/vars.yaml"\n  }\n}\n',
                    "packer/t/goss/web.yaml": "port: {}\n", "packer/t/goss/vars.yaml": "{}\n"})
    found = inputs(tmp_path)
    assert {"packer/t/goss/web.yaml", "packer/t/goss/vars.yaml"} <= set(found.files)
    assert found.dropped_in_sandbox == ("provisioner 1 (goss)",)


@pytest.mark.parametrize("default", ['"${env("FLAVOR")}!"', 'lower(env("FLAVOR"))',
                                     '[env("FLAVOR")]', '{ k = env("FLAVOR") }',
                                     'try(env("FLAVOR"), "plain")', '[{ k = [env("FLAVOR")] }]'])
def test_an_environment_read_inside_a_default_must_be_declared_too(tmp_path, default):
    tree(tmp_path, {"packer/t/flavor.pkr.hcl":
                    f'variable "flavor" {{\n  default = {default}\n}}\n'})
    assert "variable flavor defaults to environment variable FLAVOR" in refusal(tmp_path)
    tree(tmp_path, {"packer/t/flavor.pkr.hcl":
                    f'variable "flavor" {{\n  default = {default}\n}}\n'},
         GRAPH + "    env_inputs: [FLAVOR]\n")
    assert inputs(tmp_path)                          # declared: an input by its hash


def test_an_environment_read_whose_name_is_an_expression_is_refused(tmp_path):
    tree(tmp_path, {"packer/t/flavor.pkr.hcl":
                    'variable "name" {\n  default = "FLAVOR"\n}\n'
                    'variable "flavor" {\n  default = env(var.name)\n}\n'},
         GRAPH + "    env_inputs: [FLAVOR]\n")
    assert "variable flavor defaults to an environment variable whose name is known only " \
           "during the build" in refusal(tmp_path)


@pytest.mark.parametrize("value", ['"{{env `AWS_REGION`}}"', '["{{ env `AWS_REGION` }}"]'])
def test_an_environment_read_in_a_json_var_file_must_be_declared(tmp_path, value):
    """amazon-eks-ami's var files read the environment: Packer fills them in."""
    files = {"packer/t/build.pkr.hcl": 'variable "region_name" {\n  default = "x"\n}\n',
             "packer/t/eks.json": f'{{"region_name": {value}}}'}
    tree(tmp_path, files, GRAPH + "    var_files: [packer/t/eks.json]\n")
    assert refusal(tmp_path) == (
        "packer/t/eks.json: region_name is environment variable AWS_REGION, which changes what "
        "is built: declare it under env_inputs: of image t in amis.yaml (the hash of its value "
        "goes into the digest), or set the value in a var file")
    tree(tmp_path, files, GRAPH + "    var_files: [packer/t/eks.json]\n"
                                  "    env_inputs: [AWS_REGION]\n")
    assert "packer/t/eks.json" in inputs(tmp_path).files


@pytest.mark.parametrize("override", ["var_file", "vars"])
def test_an_environment_read_that_packer_never_uses_is_not_refused(tmp_path, override):
    """amazon-eks-ami: creator = {{env `USER`}} in one var file, set again
    after it; a template default a var file or vars: sets is never read."""
    files = {"packer/t/build.pkr.hcl": 'variable "creator" {\n  default = env("USER")\n}\n'
                                       'variable "owner" {\n  default = env("USER")\n}\n',
             "packer/t/eks.json": '{"creator": "{{env `USER`}}", "owner": "ci"}',
             "packer/t/later.json": '{"creator": "ci"}'}
    later = "packer/t/later.json" if override == "var_file" else None
    graph = GRAPH + "    var_files: [packer/t/eks.json" + (f", {later}" if later else "") + "]\n" \
        + ("" if later else "    vars: {creator: ci}\n")
    tree(tmp_path, files, graph)
    assert "packer/t/eks.json" in inputs(tmp_path).files
    tree(tmp_path, files, GRAPH + "    var_files: [packer/t/later.json, packer/t/eks.json]\n")
    assert refusal(tmp_path).startswith("packer/t/eks.json: creator is environment variable USER")


def test_a_null_in_a_json_var_file_is_the_empty_string(tmp_path):
    """Packer 1.6.6 renders a var file's null as "": no file is read."""
    (tmp_path / "packer/t").mkdir(parents=True)
    (tmp_path / "packer/t/t.json").write_text(json.dumps({
        "variables": {"source_ami": "", "user_data_file": None},
        "builders": [{"type": "amazon-ebs", "source_ami": "{{user `source_ami`}}",
                      "ami_name": "t-{{timestamp}}",
                      "user_data_file": "{{user `user_data_file`}}"}]}))
    (tmp_path / "packer/t/vars.json").write_text('{"user_data_file": null}')
    (tmp_path / "amis.yaml").write_text(
        "region: eu-west-1\nsource: {name: src, ami: ami-12345678}\nimages:\n  t:\n"
        "    parent: src\n    template: packer/t/t.json\n    var_files: [packer/t/vars.json]\n")
    assert set(inputs(tmp_path).files) == {"packer/t/t.json", "packer/t/vars.json"}


def test_one_source_in_two_build_blocks_is_refused(tmp_path):
    build = 'build {\n  sources = ["source.amazon-ebs.t"]\n}\n'
    tree(tmp_path, {"packer/t/a.pkr.hcl": build, "packer/t/b.pkr.hcl": build})
    assert refusal(tmp_path) == ("packer/t: source amazon-ebs.t is in 2 build blocks, each "
                                 "making an AMI, and image t records one: keep it in one")


def test_a_dynamic_block_in_a_post_processors_group_is_refused(tmp_path):
    tree(tmp_path, {"packer/t/build.pkr.hcl":
                    'build {\n  sources = ["source.amazon-ebs.t"]\n  post-processors {\n'
                    '    dynamic "post-processor" {\n      labels   = ["shell-local"]\n'
                    '      for_each = ["/tmp/evil.sh"]\n      content {\n'
                    '        script = post-processor.value\n      }\n    }\n  }\n}\n'})
    assert "a dynamic block in post-processors { } is not supported" in refusal(tmp_path)


def test_a_var_file_or_template_file_linked_out_of_the_repository_is_refused(tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "my.pkrvars.hcl").write_text('script = "x"\n')
    (outside / "extra.pkr.hcl").write_text("")
    root = tmp_path / "repo"
    tree(root, {}, GRAPH + "    var_files: [packer/my.pkrvars.hcl]\n")
    os.symlink(outside / "my.pkrvars.hcl", root / "packer/my.pkrvars.hcl")
    assert refusal(root).startswith("packer/my.pkrvars.hcl: a symbolic link to ")
    tree(root, {})
    os.symlink(outside / "extra.pkr.hcl", root / "packer/t/extra.pkr.hcl")
    assert refusal(root).startswith("packer/t/extra.pkr.hcl: a symbolic link to ")


@pytest.mark.parametrize("depth", [150, 100_000])
@pytest.mark.parametrize("where", ["packer/t/deep.auto.pkrvars.json", "packer/t/vars.json",
                                   "packer/j.json"])
def test_json_nested_past_any_walk_is_one_line(tmp_path, where, depth):
    deep = '{"x": ' + "[" * depth + "]" * depth + "}"
    graph = GRAPH
    if where == "packer/t/vars.json":
        graph += "    var_files: [packer/t/vars.json]\n"
    if where == "packer/j.json":
        graph = graph.replace("template: packer/t", "template: packer/j.json")
    tree(tmp_path, {where: deep}, graph)
    message = refusal(tmp_path)
    assert message.startswith(where) and message.endswith(": nested more than 100 deep: "
                                                          "flatten it"), message


@pytest.mark.parametrize("default", ["{{env `HOME`}}", "{{- env `HOME` -}}", "{{ (env `HOME`) }}",
                                     "{{ `HOME` | env }}", "{{ print (env `HOME`) }}",
                                     '{{ env "HOME" }}'])
def test_an_environment_read_in_any_go_template_spelling_must_be_declared(tmp_path, default):
    json_template_defaulting(tmp_path, default)
    assert "variable x defaults to environment variable HOME" in refusal_of(tmp_path, "j")
    (tmp_path / "amis.yaml").write_text((tmp_path / "amis.yaml").read_text()
                                        + "    env_inputs: [HOME]\n")
    assert inputs(tmp_path, "j")


def json_template_defaulting(root: Path, default: str, image_keys: str = "") -> None:
    """Image j: a JSON template whose variable x defaults to ``default``."""
    (root / "packer").mkdir(parents=True)
    (root / "packer/j.json").write_text(json.dumps({
        "variables": {"source_ami": "", "x": default},
        "builders": [{"type": "amazon-ebs", "source_ami": "{{user `source_ami`}}",
                      "ami_name": "j-{{timestamp}}"}]}))
    (root / "amis.yaml").write_text(
        "region: eu-west-1\nsource: {name: src, ami: ami-12345678}\nimages:\n  j:\n"
        "    parent: src\n    template: packer/j.json\n" + image_keys)


def refusal_of(root: Path, image: str) -> str:
    with pytest.raises(AmiError) as info:
        inputs(root, image)
    return str(info.value)


def test_a_path_under_the_build_hosts_home_is_refused_even_with_a_decoy(tmp_path):
    """Packer expands ~ to the build host's home: a file of the same name in
    the repository is not what it reads."""
    tree(tmp_path, {"packer/t/home.pkr.hcl": 'locals {\n  x = file("~/probe.txt")\n}\n',
                    "packer/t/~/probe.txt": "decoy\n"})
    assert "'~/probe.txt': ~ is a home folder of the build host" in refusal(tmp_path)


@pytest.mark.parametrize("default", ['{{ printf "%s%s" "HO" "ME" | env }}',
                                     '{{ "HOME" | printf "%s" | env }}'])
def test_an_environment_read_of_a_computed_name_is_refused_not_misnamed(tmp_path, default):
    json_template_defaulting(tmp_path, default, "    env_inputs: [ME]\n")
    assert "an environment variable whose name is known only during the build" in \
        refusal_of(tmp_path, "j")
