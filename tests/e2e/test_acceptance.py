"""Acceptance end to end: the real Packer against the emulator, each new AMI
tested by pytest with testinfra over SSH (the sandbox's stand-in) before
its channel moves."""

from __future__ import annotations

import json
import re

from support.project import Project, commit, ok

FAILING = ("def test_the_acceptance_marker_is_there(host):\n"
           "    assert host.file('/nonexistent/amis-acceptance-marker').exists\n")


def runs_of_tests(project: Project) -> int:
    """How many test runs have left their log."""
    return len(list((project.path / ".amis/logs").glob("*-tests.log")))


def current(project: Project, image: str) -> dict:
    return json.loads(project.record(image).read_text())


def test_an_ami_is_tested_before_main_moves_and_a_fix_to_the_tests_alone_publishes_it(
        project: Project):
    # a passing test publishes
    first = ok(project.doit("amis"))
    # said once a run, though every image's tests ran on a stand-in
    assert first.stdout.count("sandbox: each image's tests run over SSH against a stand-in on "
                              "this machine (127.0.0.1)") == 1, first.stdout
    before = current(project, "base")
    assert before["tests"]["passed"] and before["tests"]["counts"]["passed"] >= 1
    children = {image: current(project, image)["amis"] for image in ("web", "worker")}

    # a failing test holds main on the previous AMI, and nothing is built on the new one
    (project.path / "ansible/roles/common/defaults/main.yml").write_text(
        (project.path / "ansible/roles/common/defaults/main.yml").read_text()
        + "\ncommon_acceptance: 1\n")
    (project.path / "ami-tests/base/test_marker.py").write_text(FAILING)
    commit(project.path)
    project.reset_count()
    rejected = project.doit("amis")
    assert rejected.returncode == 4, rejected.stdout + rejected.stderr
    out = rejected.stdout + rejected.stderr
    assert re.search(r"image base: ami-\w+ rejected by tests \w{12} at \S+: "
                     r"ami-tests/base/test_marker\.py::test_the_acceptance_marker_is_there; "
                     r"channel main stays on " + before["amis"]["eu-west-1"], out), out
    assert "[web] skipped: base was rejected by its tests" in out, out
    assert project.packer_builds() == ["base"]
    assert current(project, "base")["amis"] == before["amis"]
    assert {image: current(project, image)["amis"] for image in children} == children

    # fixing only the tests publishes the AMI already built, without Packer for it
    (project.path / "ami-tests/base/test_marker.py").unlink()
    commit(project.path)
    plan = ok(project.doit("plan")).stdout
    assert re.search(r"^base\s+test\s+", plan, re.M), plan
    project.reset_count()
    fixed = ok(project.doit("amis"))
    assert "base" not in project.packer_builds()
    assert sorted(project.packer_builds()) == ["build", "deploy", "web", "worker"]
    assert re.search(r"\[base\] tested ami-\w+ \(built earlier\)", fixed.stdout), fixed.stdout
    assert current(project, "base")["amis"] != before["amis"]

    # a second run tests nothing and builds nothing
    runs = runs_of_tests(project)
    project.reset_count()
    again = ok(project.doit("amis"))
    assert runs_of_tests(project) == runs and project.packer_builds() == [], again.stdout


def test_doit_test_runs_the_current_amis_tests_and_moves_nothing(project: Project):
    ok(project.doit("amis"))
    before = {image: current(project, image) for image in ("base", "web")}
    again = ok(project.doit("test", "-i", "web"))
    assert re.search(r"\[web\] ami-\w+ passed: 1 passed, \d+ skipped; log: \.amis/logs/web-",
                     again.stdout), again.stdout
    (project.path / "ami-tests/web/test_marker.py").write_text(FAILING)
    failed = project.doit("test", "-i", "web")
    assert failed.returncode == 4
    assert "test: the current AMI of web in channel main failed its tests (nothing moved)" \
        in failed.stdout + failed.stderr
    assert {image: current(project, image) for image in ("base", "web")} == before
