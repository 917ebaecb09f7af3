"""Checks before a build, in process on the fakes: the Packer version's
limits refuse an image in one line before anything runs, the checkers run
in the stage and their first error is the one line, and ansible-lint gets
the project's settings with third-party roles left out (the real Packer
validates in integration/test_prebuild.py)."""

from __future__ import annotations

import pytest
import yaml

from tasks.adapters.tools import Ran
from tasks.core.errors import AmiError


def test_a_template_needing_a_newer_packer_is_refused_before_any_check(tree):
    tree.append("packer/ami/variables.pkr.hcl", 'packer {\n  required_version = ">= 1.9.0"\n}\n')
    app, out = tree.run()
    with pytest.raises(AmiError, match=r'packer/ami: packer \{ required_version = '
                                       r'">= 1.9.0" \} is not met by Packer 1.6.6'):
        app.prebuild.check_image("web", app.say)
    assert out.getvalue() == "" and tree.tools.calls == []


def test_the_checks_run_in_the_stage_and_a_failure_is_one_line_at_the_users_file(tree):
    app, out = tree.run()
    assert app.prebuild.validate("deploy", app.say) == [
        "packer fmt -check", "packer validate", "--syntax-check ansible/deploy_ami.yaml"]
    validated = tree.tools.ran("scripted-packer")
    assert [argv[1] for argv in validated] == ["fmt", "fmt", "validate"]
    stage = tree.tools.calls[2][1]
    assert stage != tree.path and str(stage).startswith(str(tree.path / ".amis/stage"))
    def validate(argv, cwd):
        if argv[1] != "validate":
            return Ran(0)
        generated = cwd / "packer/ami/ami.hcl.pkr.json"
        line = next(n for n, text in enumerate(generated.read_text().splitlines(), 1)
                    if '"instance_type"' in text)
        return Ran(1, "", f"Error: Unsupported argument\n\n  on {generated} line {line}:\n"
                          "An argument named \"instance_type\" is not expected here.")
    tree.tools.script["scripted-packer"] = validate
    source = (tree.path / "packer/ami/ami.pkr.hcl").read_text().splitlines()
    at = next(n for n, text in enumerate(source, 1) if text.strip().startswith("instance_type"))
    with pytest.raises(AmiError, match=r"^packer validate packer/ami failed: Error: Unsupported "
                                       rf"argument, on packer/ami/ami.pkr.hcl line {at} \(details "
                                       r"above\); stage kept in \.amis/stage/deploy-\w+/$"):
        app.prebuild.validate("deploy", app.say)
    assert f"on packer/ami/ami.pkr.hcl line {at}:" in out.getvalue()


def test_ansible_lint_gets_the_projects_settings_and_leaves_third_party_out(tree):
    app, _ = tree.run()
    path = app.prebuild._lint_config(".", ".ansible-lint", ["ansible/roles/vendor.role"],
                                     ["acme.platform.docker"])
    data = yaml.safe_load(path.read_text())
    assert data["profile"] == yaml.safe_load((tree.path / ".ansible-lint").read_text())["profile"]
    assert data["exclude_paths"][-1] == str(tree.path / "ansible/roles/vendor.role")
    assert data["mock_roles"] == ["acme.platform.docker"]
    (tree.path / ".ansible-lint").write_text("- not a mapping\n")
    with pytest.raises(AmiError, match=".ansible-lint: must be a mapping of ansible-lint settings"):
        app.prebuild._lint_config(".", ".ansible-lint", [], [])


def test_upstream_code_is_linted_under_its_own_settings_and_ignore_file(tree):
    # image-builder's shape: the Ansible project in a subfolder, with its own
    # settings (excludes relative to it) and an ignore file of known violations
    tree.write("ansible/.ansible-lint", "profile: basic\nexclude_paths: [legacy/]\n")
    tree.write("ansible/.ansible-lint-ignore", "roles/docker/tasks/main.yml no-changed-when\n")
    app, _ = tree.run()
    assert app.prebuild.lint(["web"], app.say)
    (argv,) = tree.tools.ran("ansible-lint")
    project = str(tree.path / "ansible")
    assert argv[argv.index("--project-dir") + 1] == project
    assert argv[argv.index("-i") + 1] == str(tree.path / "ansible/.ansible-lint-ignore")
    data = yaml.safe_load(open(argv[argv.index("-c") + 1]).read())
    assert data["profile"] == "basic" and data["exclude_paths"][0] == f"{project}/legacy"


def test_every_checker_runs_and_each_failure_is_named(tree):
    def checker(argv, cwd):
        if argv[1] == "fmt":
            return Ran(3, "", "packer/ami/ami.pkr.hcl\n")
        if argv[1] == "validate":
            return Ran(1, "", "Error: Missing required argument\n")
        return Ran(0)
    tree.tools.script["scripted-packer"] = checker
    app, _ = tree.run()
    with pytest.raises(AmiError) as info:
        app.prebuild.validate("deploy", app.say)
    text = str(info.value)
    assert text.startswith("2 problems, fix them all, then run again:"), text
    assert "packer fmt -check: packer/ami/ami.pkr.hcl, packer/ami/variables.pkr.hcl not in " \
           "Packer's canonical format: run packer fmt on them, or set packer_fmt: report" in text
    assert "packer validate packer/ami failed: Error: Missing required argument" in text
    assert [argv[1] for argv in tree.tools.ran("ansible-playbook")] == ["--syntax-check"]


def test_packer_fmt_report_says_the_differences_and_goes_on(tree):
    tree.tools.script["scripted-packer"] = lambda argv, cwd: Ran(3 if argv[1] == "fmt" else 0)
    text = (tree.path / "amis.yaml").read_text()
    tree.write("amis.yaml", text.replace("defaults:\n", "defaults:\n  packer_fmt: report\n"))
    app, out = tree.run()
    assert app.prebuild.validate("deploy", app.say)[0] == "packer fmt -check"
    assert ("packer fmt -check: packer/ami/ami.pkr.hcl, packer/ami/variables.pkr.hcl not in "
            "Packer's canonical format (packer_fmt: report, so not fatal)") in out.getvalue()


def test_a_checkers_one_line_takes_its_telling_line():
    from tasks.ops.prebuild import _problem
    packer = ("Error: 1 error(s) occurred:\n\n* ssh_private_key_file is invalid: stat "
              "/home/packer/.ssh/packer-builder: no such file or directory\n\n"
              "  on packer/sources.pkr.hcl line 1:\n  (source code not available)\n")
    assert _problem(packer) == ("ssh_private_key_file is invalid: stat /home/packer/.ssh/"
                                "packer-builder: no such file or directory",
                                "on packer/sources.pkr.hcl line 1")
    lint = ("WARNING  Listing 2 violation(s) that are fatal\nplaybook.yml:2: name[play]: All "
            "plays should be named.\nplaybook.yml:5: no-changed-when: Commands should not "
            "change things if nothing needs doing.\n")
    assert _problem(lint)[0] == "playbook.yml:2: name[play]: All plays should be named. " \
        "(and 1 more)"
