"""What a run says around a build: a region AWS does not have is one line
from plan and amis (validate runs the same check), naming amis.yaml and
the image, with the region meant, before Packer runs; a run that built
ends by saying where the build logs are."""

from __future__ import annotations

import re

import pytest

from support.project import failed


@pytest.mark.parametrize("command", [["plan"], ["amis"]])   # validate: the same preflight
def test_a_region_typo_is_caught_before_any_build(tree, aws, command):
    text = (tree.path / "amis.yaml").read_text()
    assert "regions: [eu-west-1, us-east-1]" in text
    tree.write("amis.yaml", text.replace("regions: [eu-west-1, us-east-1]",
                                         "regions: [eu-west-1, us-esat-1]"))
    out = failed(tree.doit(*command))
    assert "image web: amis.yaml: region 'us-esat-1' is not an AWS region: did you mean " \
           "us-east-1?" in out, out
    assert "web" not in tree.packer_builds()


def test_a_run_that_built_says_where_its_logs_are(tree, aws):
    import re

    from support.project import ok
    out = ok(tree.doit("ami:base")).stdout
    found = re.search(r"^build logs in \.amis/logs/: (base-\d{8}T\d{6}Z\.log)$", out, re.M)
    assert found, out
    assert (tree.path / ".amis/logs" / found.group(1)).is_file()
    assert "build logs in" not in ok(tree.doit("ami:base")).stdout       # nothing built


@pytest.mark.parametrize("command", [["plan"], ["amis"]])
def test_an_instance_type_ec2_does_not_have_is_caught_before_any_build(tree, aws, command):
    text = (tree.path / "amis.yaml").read_text()
    assert "  web:\n    parent: base\n" in text
    tree.write("amis.yaml", text.replace("  web:\n    parent: base\n",
                                         "  web:\n    parent: base\n    vars:\n"
                                         "      instance_type: t3.mirco\n", 1))
    out = failed(tree.doit(*command))
    assert "image web: packer/ami/ami.pkr.hcl: instance_type 't3.mirco' is not an EC2 " \
           "instance type: did you mean t3.micro?" in out, out
    assert "web" not in tree.packer_builds()


# -- exit codes (docs/reference/exit-codes.md) ---------------------------------

def test_a_build_that_fails_ends_1_however_it_is_asked_for(tree, aws):
    tree.packer.fail["base"] = "UnauthorizedOperation: not allowed"
    every = tree.doit("amis")
    one = tree.doit("ami:base")
    assert (every.returncode, one.returncode) == (1, 1), every.stderr + one.stderr
    errors = [l for l in every.stderr.splitlines() if l.startswith("ERROR: ")]
    assert errors == ["ERROR: image base: Packer exited 1: UnauthorizedOperation: not allowed; "
                      "nothing published, the previous AMI stays current; log: "
                      + errors[0].split("log: ")[1]], every.stderr
    assert "TaskFailed" not in every.stdout + every.stderr
    skipped = next(l for l in every.stderr.splitlines() if l.startswith("skipped, because"))
    assert sorted(skipped.split(": ", 1)[1].split(", ")) == [
        "ami:build", "ami:deploy", "ami:web", "ami:worker"], every.stderr
    assert re.search(r"stage kept in \.amis/stage/base-[0-9a-f]{8}/$", errors[0]), errors[0]
    table = {line.split()[0]: line.split()[-1] for line in every.stdout.splitlines()[-8:]
             if line.split() and line.split()[0] in ("base", "web")}
    assert table == {"base": "failed", "web": "skipped"}, every.stdout


def test_a_mistake_ends_3_and_success_0(tree, aws):
    assert tree.doit("inputs", "-i", "wbe").returncode == 3
    assert tree.doit("gc", "--keep", "many").returncode == 3
    assert tree.doit("amsi").returncode == 3
    text = (tree.path / "amis.yaml").read_text()
    tree.write("amis.yaml", text.replace("parent: base\n    regions", "parent: bsae\n    regions"))
    broken = tree.doit("plan")
    assert broken.returncode == 3 and "unknown parent 'bsae'" in broken.stderr
    tree.write("amis.yaml", text)
    assert tree.doit("plan").returncode == 0


def test_help_of_a_task_ends_0_and_names_its_defaults(tree, aws):
    shown = tree.doit("gc", "--help")
    assert shown.returncode == 0 and "(default: 3)" in shown.stdout and "example:" in shown.stdout
    assert tree.packer_builds() == []
