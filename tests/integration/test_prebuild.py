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


def test_the_real_packer_validates_what_only_narrowed(tmp_path, aws):
    """amazon-ecs-ami's shape (tests/fixtures/ecs-ami): each image's stage
    holds only what its source reads, its build block lists only that
    source, and Packer 1.6.6 accepts it as it is."""
    import shutil
    from pathlib import Path

    from support.inproc import Tree
    from support.project import copy_files
    fixture = Path(__file__).resolve().parents[1] / "fixtures/ecs-ami"
    tree = Tree(copy_files(tmp_path / "repo",
                           tree=lambda d: shutil.copytree(fixture, d, dirs_exist_ok=True)),
                aws.url)
    app, _ = tree.run()
    app.__dict__["_packers"] = Packers(app.interrupts, 30, "packer", app.settings.env)
    for name in ("al2023", "al2023arm", "al2023gpu", "al2"):
        said: list[str] = []
        assert app.prebuild.validate(name, said.append) == ["packer fmt -check",
                                                           "packer validate"], said
