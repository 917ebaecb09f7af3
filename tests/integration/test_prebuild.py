"""Checks before a build with the real programs: packer fmt, packer validate
and ansible-playbook --syntax-check read the image's stage."""

from __future__ import annotations

from tasks.adapters.packer import Packers


def test_packer_validate_runs_in_the_stage_with_the_real_packer(tree):
    app, _ = tree.run()
    app.__dict__["_packers"] = Packers(app.interrupts, 30, "packer", app.settings.env)
    checks = app.prebuild.validate("deploy", lambda text: None)
    assert checks == ["packer fmt -check", "packer validate",
                      "--syntax-check ansible/deploy_ami.yaml"]
