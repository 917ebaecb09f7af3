"""Every problem at once: a template, an image or a tree with several
problems gets all of them named by one check, each at its file and line
with its fix, as Packer's hcl.Diagnostics are; and the checks before any
build that find what would otherwise fail minutes into it (another region,
a public AMI, a required variable nothing sets), for both formats."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from support import shapes
from tasks.core.diagnostics import Diagnostics
from tasks.core.errors import AmiError
from tasks.core.graph import load_graph
from tasks.inputs.hcl import parse as hcl_parse
from tasks.inputs.image import found_inputs, image_inputs
from tasks.ops.plan import planned

GRAPH = """\
region: eu-west-1
source: {name: centos, ami: ami-bb9a6bc2}
images:
  t:
    parent: centos
    template: TEMPLATE
"""
BUILD = ('build {\n  sources = ["source.amazon-ebs.t"]\n\n'
         '  provisioner "shell" {\n    script = "${path.root}/${var.source_ami}.sh"\n  }\n\n'
         '  provisioner "puppet-masterless" {\n    manifest_file = "site.pp"\n  }\n}\n')


def problems(root: Path, image: str = "t") -> tuple[str, ...]:
    graph = load_graph(root)
    with pytest.raises(AmiError) as info:
        image_inputs(graph, graph.images[image])
    assert all("\n" not in p for p in info.value.problems)
    return info.value.problems


def hcl_tree(root: Path, source: str, build: str = BUILD, variables: str = "",
             graph: str = GRAPH) -> Path:
    shapes.write(root, {"amis.yaml": graph.replace("TEMPLATE", "packer/t"),
                        "packer/t/variables.pkr.hcl": shapes.HCL_VARIABLES + variables,
                        "packer/t/source.pkr.hcl": source, "packer/t/build.pkr.hcl": build})
    return root


def line_of(root: Path, path: str, text: str) -> int:
    return next(n for n, line in enumerate((root / path).read_text().splitlines(), 1)
                if text in line)


def test_three_problems_in_one_template_are_named_at_once_each_at_its_line(tmp_path):
    source = shapes.HCL_SOURCE.replace("NAME", "t").replace('"${var.image}-${uuidv4()}"',
                                                            '"fixed"')
    found = problems(hcl_tree(tmp_path, source))
    assert len(found) == 3, found
    at = {p.split(": ", 1)[0]: p for p in found}
    ami_name = f"packer/t/source.pkr.hcl:{line_of(tmp_path, 'packer/t/source.pkr.hcl', 'ami_name')}"
    script = f"packer/t/build.pkr.hcl:{line_of(tmp_path, 'packer/t/build.pkr.hcl', 'script')}"
    puppet = f"packer/t/build.pkr.hcl:{line_of(tmp_path, 'packer/t/build.pkr.hcl', 'puppet')}"
    assert set(at) == {ami_name, script, puppet}, found
    assert "is the same on every build" in at[ami_name] and "add ${uuidv4()}" in at[ami_name]
    assert "cannot be resolved before the build" in at[script]
    assert "provisioner type 'puppet-masterless'" in at[puppet]
    # the message a user sees counts them and numbers each one
    graph = load_graph(tmp_path)
    with pytest.raises(AmiError) as info:
        image_inputs(graph, graph.images["t"])
    assert str(info.value).startswith("3 problems, fix them all, then run again:\n  1. ")


def test_a_json_template_with_three_problems_names_each_at_its_line(tmp_path):
    data = {"variables": {**shapes.VARIABLES, "vpc": None},
            "builders": [{**shapes.EBS, "ami_name": "fixed", "ami_groups": ["all"]}],
            "provisioners": [{"type": "chef-solo", "cookbook_paths": ["x"]},
                             {"type": "shell", "script": "{{user `nope`}}.sh"}]}
    shapes.write(tmp_path, {"amis.yaml": GRAPH.replace("TEMPLATE", "packer/t.json"),
                            "packer/t.json": json.dumps(data, indent=2)})
    found = problems(tmp_path)
    template = "packer/t.json"

    def at(text: str) -> str:
        return f"{template}:{line_of(tmp_path, template, text)}: "
    expected = {at('"vpc"'): "variable vpc has no default and nothing sets it",
                at('"chef-solo"'): "provisioner type 'chef-solo'",
                at('"script"'): "user variable nope is not declared",
                at('"ami_name"'): "is the same on every build",
                at('"ami_groups"'): 'ami_groups includes "all", which makes the AMI public'}
    for where, what in expected.items():
        assert any(p.startswith(where) and what in p for p in found), (where, what, found)
    assert len(found) == len(expected), found


@pytest.mark.parametrize("how", ["hard-coded", "a variable's default"])
def test_a_template_that_builds_in_another_region_is_refused_naming_both(tmp_path, how):
    region = '"us-west-2"' if how == "hard-coded" else "var.aws_region"
    source = shapes.HCL_SOURCE.replace("NAME", "t").replace("var.region", region)
    hcl_tree(tmp_path, source, build='build {\n  sources = ["source.amazon-ebs.t"]\n}\n',
             variables='variable "aws_region" {\n  type    = string\n  default = "us-west-2"\n}\n')
    (found,) = problems(tmp_path)
    assert found.startswith("packer/t/source.pkr.hcl:2: region 'us-west-2' is not the tree's "
                            "region eu-west-1 (amis.yaml)"), found
    assert found.endswith("set region = var.region (the tree passes its region)")


def test_the_tree_region_given_as_a_variable_passes(tmp_path):
    # the runner passes region: a default of another region is never used
    hcl_tree(tmp_path, shapes.HCL_SOURCE.replace("NAME", "t"),
             build='build {\n  sources = ["source.amazon-ebs.t"]\n}\n')
    variables = tmp_path / "packer/t/variables.pkr.hcl"
    variables.write_text(variables.read_text().replace(
        'variable "region" {\n  type = string\n', 'variable "region" {\n  type = string\n'
        '  default = "us-west-2"\n'))
    graph = load_graph(tmp_path)
    assert image_inputs(graph, graph.images["t"]).problems == ()


def test_a_required_variable_a_var_file_or_vars_sets_passes(tmp_path):
    build = 'build {\n  sources = ["source.amazon-ebs.t"]\n}\n'
    required = 'variable "vpc_id" {\n  type = string\n}\n'
    hcl_tree(tmp_path, shapes.HCL_SOURCE.replace("NAME", "t"), build, required)
    (found,) = problems(tmp_path)
    assert found.startswith(f"packer/t/variables.pkr.hcl:"
                            f"{line_of(tmp_path, 'packer/t/variables.pkr.hcl', 'vpc_id')}: "
                            "variable vpc_id has no default and nothing sets it"), found
    for extra, files in (("    vars: {vpc_id: vpc-1}\n", {}),
                         ("    var_files: [packer/t/my.pkrvars.hcl]\n",
                          {"packer/t/my.pkrvars.hcl": 'vpc_id = "vpc-1"\n'})):
        hcl_tree(tmp_path, shapes.HCL_SOURCE.replace("NAME", "t"), build, required,
                 graph=GRAPH + extra)
        shapes.write(tmp_path, files)
        graph = load_graph(tmp_path)
        assert image_inputs(graph, graph.images["t"]).problems == ()


def test_the_walk_goes_on_and_found_inputs_keeps_what_it_found(tmp_path):
    source = shapes.HCL_SOURCE.replace("NAME", "t")
    hcl_tree(tmp_path, source)
    graph = load_graph(tmp_path)
    found = found_inputs(graph, graph.images["t"])
    assert len(found.problems) == 2
    assert {"packer/t/source.pkr.hcl", "packer/t/build.pkr.hcl"} <= set(found.files)


def test_plan_names_every_images_problems_in_one_error(tree):
    tree.write("ansible/web_ami.yaml", "- hosts: all\n  tasks:\n    - copy:\n        src: "
               "\"{{ lookup('env', 'HOME') }}/x\"\n        dest: /x\n")
    tree.write("ansible/worker_ami.yaml", "- hosts: all\n  roles: [nowhere]\n")
    app, _ = tree.run()
    with pytest.raises(AmiError) as info:
        app.checkout.inputs()
    files = [re.split(r"[ :]", p)[0] for p in info.value.problems]
    assert files == ["ansible/web_ami.yaml"] * 2 + ["ansible/worker_ami.yaml"], files
    assert "lookup" in info.value.problems[0] and "nowhere" in info.value.problems[2]
    assert set(app.checkout.found()[0]) == set(app.graph.images)      # what each walk found
    done = tree.doit("plan")
    assert done.returncode == 3
    shown = done.stdout + done.stderr
    assert "3 problems, fix them all, then run again:" in shown, shown
    assert "1. ansible/web_ami.yaml" in shown and "3. ansible/worker_ami.yaml" in shown, shown


def test_diagnostics_keep_one_of_each_problem_in_order():
    found = Diagnostics()
    for problem in ("b", "a", "b"):
        found.add(problem)
    with found.collect():
        raise AmiError.of(["c", "a"])
    assert found.problems == ["b", "a", "c"]
    with pytest.raises(AmiError) as info:
        found.check()
    assert info.value.problems == ("b", "a", "c")
    assert not Diagnostics()
    Diagnostics().check()


@pytest.mark.parametrize("field, value, what", [
    ("metadata_options", {"http_tokens": "required"}, "amazon-ebs metadata_options"),
    ("skip_create_ami", True, "amazon-ebs skip_create_ami"),
    ("launch_block_device_mappings", [{"device_name": "/dev/xvda", "volume_type": "gp3"}],
     "a gp3 volume without throughput and iops"),
    ("tags", {"Packer": "{{ packer_version }}"}, "{{packer_version}}"),
])
def test_what_packer_1_6_6_cannot_run_is_found_in_a_json_template(tmp_path, field, value, what):
    data = {"variables": shapes.VARIABLES,
            "builders": [{**shapes.EBS, "ami_name": "t-{{timestamp}}", field: value}]}
    shapes.write(tmp_path, {"amis.yaml": GRAPH.replace("TEMPLATE", "packer/t.json"),
                            "packer/t.json": json.dumps(data, indent=2)})
    graph = load_graph(tmp_path)
    assert image_inputs(graph, graph.images["t"]).template.newer == (("packer/t.json", what),)


def test_packer_1_6_6_names_each_thing_it_cannot_run_at_its_line(tree):
    tree.write("packer/ami/ami.pkr.hcl", (tree.path / "packer/ami/ami.pkr.hcl").read_text().replace(
        "  encrypt_boot    = true\n", "  encrypt_boot    = true\n  skip_create_ami = false\n"
        "  metadata_options {\n    http_tokens = \"required\"\n  }\n"))
    app, _ = tree.run()
    with pytest.raises(AmiError) as info:
        app.prebuild.preflight("web")
    lines = (tree.path / "packer/ami/ami.pkr.hcl").read_text().splitlines()
    skip = next(n for n, text in enumerate(lines, 1) if "skip_create_ami" in text)
    metadata = next(n for n, text in enumerate(lines, 1) if "metadata_options" in text)
    assert info.value.problems == (
        f"image web: packer/ami/ami.pkr.hcl:{metadata}: amazon-ebs metadata_options needs "
        "Packer 1.7 or newer; found 1.6.6: upgrade Packer, or remove it (the runner requires "
        "IMDSv2 on the build instance and on the AMI itself)",
        f"image web: packer/ami/ami.pkr.hcl:{skip}: amazon-ebs skip_create_ami needs Packer 1.7 "
        "or newer; found 1.6.6: upgrade Packer, or remove it")
    with pytest.raises(AmiError) as every:
        planned(app.graph, app.lookup, app.prebuild)        # the images sharing it: one line
    assert every.value.problems[0].startswith(
        "images base, build, deploy, web, worker: packer/ami/ami.pkr.hcl:")


def test_packer_version_in_an_hcl2_source_is_found_too(tmp_path):
    source = shapes.HCL_SOURCE.replace("NAME", "t").replace(
        '  instance_type = "t3.small"\n',
        '  instance_type = "t3.small"\n  tags = {\n    Builder = "packer-{{packer_version}}"\n  }\n')
    hcl_tree(tmp_path, source, build='build {\n  sources = ["source.amazon-ebs.t"]\n}\n')
    graph = load_graph(tmp_path)
    assert image_inputs(graph, graph.images["t"]).template.newer == (
        ("packer/t/source.pkr.hcl", "{{packer_version}}"),)


def test_vars_take_lists_and_maps_and_packer_gets_them_as_json(tree):
    tree.append("packer/ami/variables.pkr.hcl",
                'variable "ami_account_ids" {\n  type    = list(string)\n  default = []\n}\n\n'
                'variable "extra_tags" {\n  type    = map(string)\n  default = {}\n}\n')
    text = (tree.path / "amis.yaml").read_text()
    tree.write("amis.yaml", text.replace(
        "  web:\n    parent: base\n",
        "  web:\n    parent: base\n    vars:\n      ami_account_ids: ['111122223333']\n"
        "      extra_tags: {Team: web, Tier: '1'}\n"))
    done = tree.doit("amis")
    assert done.returncode == 0, done.stdout + done.stderr
    web = next(b for b in tree.packer.builds if b.image == "web")
    assert web.variables["ami_account_ids"] == ["111122223333"]
    assert web.variables["extra_tags"] == {"Team": "web", "Tier": "1"}
    app, _ = tree.run()
    assert app.checkout.tree_settings("web")["vars"]["ami_account_ids"] == '["111122223333"]'


def test_a_list_var_for_a_json_template_is_refused_with_the_fix(tmp_path):
    data = {"variables": shapes.VARIABLES,
            "builders": [{**shapes.EBS, "ami_name": "t-{{timestamp}}"}]}
    shapes.write(tmp_path, {"amis.yaml": GRAPH.replace("TEMPLATE", "packer/t.json")
                            + "    vars: {ids: [a, b]}\n",
                            "packer/t.json": json.dumps(data, indent=2)})
    found = problems(tmp_path)
    assert found[0] == ("amis.yaml: image t: vars: ids is a list or map, but a JSON template's "
                        "variables are strings (packer/t.json): write it as a string (HCL2 "
                        "templates take lists and maps)"), found


def test_a_file_provisioners_absolute_source_is_accepted_when_declared(tmp_path):
    # a Vault image's shape: a key kept out of git, baked in by a file provisioner
    key = tmp_path / "host/vault.pem"
    key.parent.mkdir()
    key.write_text("not a real key\n")
    build = ('build {\n  sources = ["source.amazon-ebs.t"]\n\n  provisioner "file" {\n'
             f'    source      = "{key}"\n    destination = "/etc/vault/tls.pem"\n  }}\n}}\n')
    repo = tmp_path / "repo"
    hcl_tree(repo, shapes.HCL_SOURCE.replace("NAME", "t"), build)
    (found,) = problems(repo)
    assert "an absolute path cannot be tracked" in found and "host_inputs:" in found
    hcl_tree(repo, shapes.HCL_SOURCE.replace("NAME", "t"), build,
             graph=GRAPH + f"    host_inputs: [{key}]\n")
    graph = load_graph(repo)
    inputs = image_inputs(graph, graph.images["t"])
    assert str(key) not in inputs.files and graph.images["t"].host_inputs == (str(key),)


@pytest.mark.parametrize("text, said", [
    ('source "amazon-ebs" "a" {\n  region = "eu-west-1\n  ami_name = "x"\n}\n',
     '2: a quoted string is not closed on its line'),
    ('build {\n  sources = ["source.amazon-ebs.a"]\n}\n}\n', "4: this } closes no block"),
    ('source "amazon-ebs" "a" {\n  tags = {\n    a = "b"\n\n}\n',
     "1: this block is never closed (a } is missing after it)"),
])
def test_an_hcl_syntax_error_is_named_at_the_line_packer_would_name(tmp_path, text, said):
    path = tmp_path / "t.pkr.hcl"
    path.write_text(text)
    with pytest.raises(AmiError) as info:
        hcl_parse.parse_text("t.pkr.hcl", text, "t.pkr.hcl")
    assert str(info.value) == f"t.pkr.hcl:{said}: fix it"


def test_what_is_valid_hcl_has_no_syntax_error_of_ours():
    hard = ('locals {\n  a = "${lookup(var.m, "k", "{")}"  # a "quote" in a comment {\n'
            '  b = <<EOF\n{ unbalanced " in a heredoc\nEOF\n  /* { " */\n'
            '  c = "esc \\" aped }"\n  d = "%{ if true }x%{ endif }"\n}\n')
    assert hcl_parse.syntax_error(hard) is None
    root = Path(__file__).resolve().parents[3]
    for path in [*root.glob("packer/**/*.pkr.hcl"), *root.glob("tests/fixtures/**/*.pkr.hcl")]:
        assert hcl_parse.syntax_error(path.read_text()) is None, path


def test_plan_names_what_this_packer_cannot_run_with_the_inputs_problems(tree):
    template = tree.path / "packer/ami/ami.pkr.hcl"
    tree.write("packer/ami/ami.pkr.hcl", template.read_text().replace(
        "  encrypt_boot    = true\n", "  encrypt_boot    = true\n"
        "  metadata_options {\n    http_tokens = \"required\"\n  }\n"))
    tree.append("ansible/worker_ami.yaml", "- hosts: all\n  roles: [nowhere]\n")
    done = tree.doit("plan")
    assert done.returncode == 3
    shown = done.stdout + done.stderr
    assert "2 problems, fix them all, then run again:" in shown, shown
    assert "role 'nowhere' not found" in shown
    assert "amazon-ebs metadata_options needs Packer 1.7 or newer; found 1.6.6" in shown


def test_a_variable_used_but_not_declared_is_named_before_any_build(tmp_path):
    # the adopted Companies House template used var.source_ami and var.build_time
    # without declaring them: plan passed, and packer validate failed minutes later
    source = shapes.HCL_SOURCE.replace("NAME", "t").replace(
        '  instance_type = "t3.small"\n', '  instance_type = "t3.small"\n  subnet_id     = var.subnet\n')
    hcl_tree(tmp_path, source, build='build {\n  sources = ["source.amazon-ebs.t"]\n}\n')
    (found,) = problems(tmp_path)
    line = line_of(tmp_path, "packer/t/source.pkr.hcl", "var.subnet")
    assert found == (f'packer/t/source.pkr.hcl:{line}: var.subnet is used but no variable '
                     '"subnet" is declared, so Packer stops: declare it, and set it under vars: '
                     "or in a var file")


def test_a_typo_in_a_provisioner_type_or_a_script_name_gets_a_did_you_mean(tmp_path):
    build = ('build {\n  sources = ["source.amazon-ebs.t"]\n\n  provisioner "shel" {\n'
             '    inline = ["true"]\n  }\n\n  provisioner "shell" {\n'
             '    script = "${path.root}/setup-cach.sh"\n  }\n}\n')
    hcl_tree(tmp_path, shapes.HCL_SOURCE.replace("NAME", "t"), build)
    shapes.write(tmp_path, {"packer/t/setup-cache.sh": "#!/bin/sh\n"})
    found = problems(tmp_path)
    assert found[0].endswith("provisioner 1 (shel): no provisioner type 'shel': did you mean "
                             "shell?"), found
    assert found[1].endswith("packer/t/setup-cach.sh does not exist: did you mean "
                             "packer/t/setup-cache.sh?: create it or fix the reference"), found


def test_sharing_with_an_account_share_with_does_not_list_is_named_before_any_build(tmp_path):
    # the adopted repository shared through ami_users = var.ami_account_ids
    source = shapes.HCL_SOURCE.replace("NAME", "t").replace(
        '  instance_type = "t3.small"\n', '  instance_type = "t3.small"\n'
        '  ami_users     = var.ami_account_ids\n')
    variables = 'variable "ami_account_ids" {\n  type    = list(string)\n  default = []\n}\n'
    build = 'build {\n  sources = ["source.amazon-ebs.t"]\n}\n'
    graph_text = GRAPH + "    vars: {ami_account_ids: ['111122223333']}\n"
    hcl_tree(tmp_path, source, build, variables, graph=graph_text)
    (found,) = problems(tmp_path)
    assert found.endswith(": ami_users shares with 111122223333, which share_with: in amis.yaml "
                          "does not list, so the build would be revoked after Packer made it: "
                          "add the account to share_with, or remove it"), found
    hcl_tree(tmp_path, source, build, variables,
             graph=graph_text + "    share_with: ['111122223333']\n")
    graph = load_graph(tmp_path)
    assert image_inputs(graph, graph.images["t"]).problems == ()


def test_an_ansible_problem_is_named_at_the_line_it_quotes(tree):
    tree.write("ansible/worker_ami.yaml", "- hosts: all\n  tasks:\n    - name: Proxy\n"
               "      ansible.builtin.debug:\n        msg: \"{{ lookup('pipe', 'id') }}\"\n")
    app, _ = tree.run()
    with pytest.raises(AmiError) as info:
        app.checkout.inputs()
    (problem,) = [p for p in info.value.problems if "pipe" in p]
    assert problem.startswith("ansible/worker_ami.yaml:5: "), problem


def test_naming_a_line_never_reads_what_is_not_a_regular_file(tmp_path):
    import os
    from tasks.inputs.repo import Repo
    from tasks.inputs.where import with_line
    os.mkfifo(tmp_path / "pipe.yml")          # reading it would wait for a writer for ever
    problem = "pipe.yml: 'abc': not a regular file"
    assert with_line(Repo(tmp_path), problem) == problem
