"""Checks before a build, in process: the Packer version's limits refuse an
image in one line before anything runs, packer validate (the real one)
reads the stage, and ansible-lint gets the project's settings with
third-party roles left out."""

from __future__ import annotations

import pytest
import yaml

from tasks.adapters.packer import Packers
from tasks.core.errors import AmiError
from tasks.ops import validate


def test_a_template_needing_a_newer_packer_is_refused_before_any_check(tree):
    tree.append("packer/ami/variables.pkr.hcl", 'packer {\n  required_version = ">= 1.9.0"\n}\n')
    run, out = tree.run()
    with pytest.raises(AmiError, match=r'image web: packer/ami: packer \{ required_version = '
                                       r'">= 1.9.0" \} is not met by Packer 1.6.6'):
        validate.check_image(run, "web")
    assert out.getvalue() == ""


def test_packer_validate_runs_in_the_stage_with_the_real_packer(tree):
    run, _ = tree.run()
    run.packers = Packers(run.interrupts, 30, "packer", run.settings.env)
    checks = validate.image(run, "deploy", lambda text: None)
    assert checks == ["packer fmt -check", "packer validate",
                      "--syntax-check ansible/deploy_ami.yaml"]


def test_ansible_lint_gets_the_projects_settings_and_leaves_third_party_out(tree):
    run, _ = tree.run()
    path = validate._lint_config(run, ["ansible/roles/vendor.role"], ["acme.platform.docker"])
    data = yaml.safe_load(path.read_text())
    assert data["profile"] == yaml.safe_load((tree.path / ".ansible-lint").read_text())["profile"]
    assert data["exclude_paths"][-1] == str(tree.path / "ansible/roles/vendor.role")
    assert data["mock_roles"] == ["acme.platform.docker"]
    (tree.path / ".ansible-lint").write_text("- not a mapping\n")
    with pytest.raises(AmiError, match=".ansible-lint: must be a mapping of ansible-lint settings"):
        validate._lint_config(run, [], [])
