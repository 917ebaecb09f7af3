"""The acceptance stage on the fakes: an image's AMI becomes current only
after its tests passed on an instance of it. Its states: never tested (a
build, then its tests), passed (never tested again), rejected (not
published, nothing built on it, not rebuilt in a loop), tests changed (the
AMI already built is tested again, without Packer). And whatever happens,
what the stage launched is removed."""

from __future__ import annotations

import json
import re
import threading

import pytest

from support.fakes import FakeTree, build_all
from tasks.adapters.fakes import Script
from tasks.adapters.signals import Interrupts
from tasks.core.errors import FAILED, INTERRUPTED, REJECTED, AmiError


def current(tree: FakeTree, image: str) -> dict:
    return json.loads(tree.store.objects[f"channels/main/{image}.json"])


def digest_record(tree: FakeTree, image: str, digest: str) -> dict:
    return json.loads(tree.store.objects[f"digests/{image}/{digest}.json"])


def nothing_left(tree: FakeTree) -> None:
    """No test instance runs, and no key pair or security group of the stage stays."""
    for region, instances in tree.ec2.running.items():
        assert all(i.state == "terminated" for i in instances
                   if i.tags.get("Purpose") == "amis-test"), instances
    assert not [k for keys in tree.ec2.keys.values() for k in keys
                if k.name.startswith("amis-test-")]
    assert not [g for groups in tree.ec2.groups.values() for g in groups
                if g.name.startswith("amis-test-")]


def edit(tree: FakeTree, rel: str, line: str) -> None:
    path = tree.path / rel
    path.write_text(path.read_text() + line)


def test_a_new_ami_is_published_only_after_its_tests_passed_on_an_instance_of_it(tree):
    build_all(tree.run()[0])
    tested = {image: env for image, _, env in tree.tests.runs}
    assert sorted(tested) == ["base", "build", "deploy", "web", "worker"]
    web = current(tree, "web")
    assert web["tests"]["passed"] is True and web["tests"]["counts"]["passed"] == 3
    assert sorted(web["tests"]["files"]) == ["ami-tests/base/test_base.py",
                                             "ami-tests/web/test_web.py"]
    launched = [i for i in tree.ec2.running["eu-west-1"] if i.tags.get("Image") == "web"]
    assert launched and launched[0].ami == web["amis"]["eu-west-1"]
    assert launched[0].tags["Purpose"] == "amis-test" and launched[0].tags["Digest"] == \
        web["digest"]
    assert ("eu-west-1", launched[0].id) in tree.ec2.imdsv2          # IMDSv2 required
    assert not any(k.startswith(("AWS_", "AMI_BUCKET")) for k in tested["web"])   # no secrets
    nothing_left(tree)
    runs = len(tree.tests.runs)
    build_all(tree.run()[0])                      # a digest accepted with these tests
    assert len(tree.tests.runs) == runs           # is never tested again


def test_a_failed_test_holds_main_builds_nothing_on_the_ami_and_is_not_rebuilt(tree):
    build_all(tree.run()[0])
    before = current(tree, "base")
    edit(tree, "ansible/roles/common/defaults/main.yml", "\ncommon_extra: 1\n")
    tree.tests.scripts["base"] = Script(passed=2, failed=("test_docker_runs",))
    tree.packer.builds.clear()
    done = tree.doit("amis")
    assert done.returncode == REJECTED, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert re.search(r"image base: ami-\w+ rejected by tests \w{12} at [\dT:+-]+: "
                     r"tests/test_base\.py::test_docker_runs; channel main stays on "
                     + before["amis"]["eu-west-1"] + r"; log: \.amis/logs/base-\w+-tests\.log",
                     out), out
    for child in ("web", "worker", "build", "deploy"):
        assert f"[{child}] skipped: base was rejected by its tests" in out, out
    assert current(tree, "base") == before and tree.packer_builds() == ["base"]
    nothing_left(tree)
    # The rejection is kept with the build: no rebuild, no retest, until something changes.
    plan = tree.doit("plan")
    assert re.search(r"^base\s+rejected\s+.*rejected by tests .*change the image or its tests",
                     plan.stdout, re.M), plan.stdout
    assert re.search(r"^web\s+blocked\s+.*parent base was rejected by its tests", plan.stdout,
                     re.M), plan.stdout
    runs = len(tree.tests.runs)
    again = tree.doit("amis")
    assert again.returncode == REJECTED and tree.packer_builds() == ["base"]
    assert len(tree.tests.runs) == runs


def test_fixing_only_the_tests_publishes_the_ami_already_built_without_packer(tree):
    build_all(tree.run()[0])
    edit(tree, "ansible/roles/common/defaults/main.yml", "\ncommon_extra: 1\n")
    tree.tests.scripts["base"] = Script(failed=("test_docker_runs",))
    assert tree.doit("amis").returncode == REJECTED
    rejected = [b for b in tree.packer.builds if b.image == "base"][-1]
    edit(tree, "ami-tests/base/test_base.py", "\n# the check was wrong\n")
    del tree.tests.scripts["base"]
    plan = tree.doit("plan")
    assert re.search(r"^base\s+test\s+.*tests changed: ami-tests/base/test_base\.py",
                     plan.stdout, re.M), plan.stdout
    assert "1 to test, on AMIs built earlier (no Packer): base" in plan.stdout
    tree.packer.builds.clear()
    done = tree.doit("amis")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "base" not in tree.packer_builds()                  # tested, not rebuilt
    base = current(tree, "base")
    assert base["amis"]["eu-west-1"] in {a for a in rejected.amis.values()}
    assert base["tests"]["passed"] and re.search(r"\[base\] tested ami-\w+ \(built earlier\)",
                                                done.stdout)
    assert sorted(tree.packer_builds()) == ["build", "deploy", "web", "worker"]   # on it


def test_a_change_to_the_tests_alone_retests_the_current_ami(tree):
    build_all(tree.run()[0])
    web = current(tree, "web")
    edit(tree, "ami-tests/web/test_web.py", "\n# one more check\n")
    tree.packer.builds.clear()
    done = tree.doit("amis")
    assert done.returncode == 0 and tree.packer_builds() == [], done.stdout
    now = current(tree, "web")
    assert now["amis"] == web["amis"] and now["tests"]["digest"] != web["tests"]["digest"]
    assert [image for image, _, _ in tree.tests.runs].count("web") == 2
    # tests that now fail leave main where it was
    edit(tree, "ami-tests/web/test_web.py", "\n# a check the AMI fails\n")
    tree.tests.scripts["web"] = Script(failed=("test_web_limits",))
    failed = tree.doit("amis")
    assert failed.returncode == REJECTED and current(tree, "web")["amis"] == web["amis"]
    assert "nothing published" not in failed.stdout


@pytest.mark.parametrize("fault", ["terminate", "delete_key_pair", "delete_security_group"])
def test_a_failed_removal_is_said_and_the_rest_still_removed(tree, fault, monkeypatch):
    tests = tree.tests.run

    def run(*args, **kwargs):               # the stage's removals fail, not Packer's
        tree.ec2.fail[fault] = [AmiError("injected", FAILED)]
        return tests(*args, **kwargs)
    monkeypatch.setattr(tree.tests, "run", run)
    app, out = tree.run()
    app.builder.pull()
    app.builder.resolve_source()
    app.builder.bring_up_to_date("base")
    text = out.getvalue()
    assert "could not remove the test's" in text and "injected" in text, text
    assert "`doit gc --apply` removes test leftovers" in text
    running = [i for i in tree.ec2.running["eu-west-1"]
               if i.tags.get("Purpose") == "amis-test" and i.state != "terminated"]
    keys = [k for k in tree.ec2.keys.get("eu-west-1", []) if k.name.startswith("amis-test-")]
    groups = [g for g in tree.ec2.groups.get("eu-west-1", []) if g.name.startswith("amis-test-")]
    left = {"terminate": running, "delete_key_pair": keys, "delete_security_group": groups}
    assert [kind for kind, found in left.items() if found] == [fault], left


def test_an_instance_that_never_answers_fails_the_stage_without_judging_the_ami(tree):
    graph = tree.path / "amis.yaml"
    graph.write_text(graph.read_text().replace("  base:\n    parent: centos\n",
                                               "  base:\n    parent: centos\n"
                                               "    test_timeout: 1s\n"))
    tree.tests.silent.add("127.0.0.1")
    app, out = tree.run()
    app.builder.pull()
    app.builder.resolve_source()
    with pytest.raises(AmiError) as info:
        app.builder.bring_up_to_date("base")
    assert info.value.code == FAILED
    assert re.fullmatch(r"image base: waited 0:01 \(test_timeout\) for i-\w+ \(127\.0\.0\.1\) "
                        r"to answer SSH: the AMI may not boot, or SSH cannot reach it \(check "
                        r"test_subnet and test_security_group\); nothing published",
                        str(info.value)), str(info.value)
    nothing_left(tree)
    assert "channels/main/base.json" not in tree.store.objects
    # not judged: the next run tests the AMI already built, no Packer
    tree.tests.silent.clear()
    tree.packer.builds.clear()
    build_all(tree.run()[0])
    assert "base" not in tree.packer_builds() and current(tree, "base")["tests"]["passed"]


def test_ctrl_c_while_the_tests_run_removes_what_the_stage_made(tree):
    gate = tree.tests.hold["base"] = threading.Event()
    interrupts = Interrupts()
    app, _ = tree.run(interrupts=interrupts)
    failure: list[BaseException] = []

    def work() -> None:
        try:
            build_all(app)
        except BaseException as err:          # noqa: BLE001 - shown below
            failure.append(err)

    worker = threading.Thread(target=work)
    worker.start()
    assert tree.tests.started.setdefault("base", threading.Event()).wait(30)
    interrupts.interrupt()
    worker.join(30)
    assert not worker.is_alive() and not gate.is_set()
    assert isinstance(failure[0], AmiError) and failure[0].code == INTERRUPTED, failure
    nothing_left(tree)
    assert "channels/main/base.json" not in tree.store.objects


def test_doit_test_retests_the_current_ami_and_moves_nothing(tree):
    build_all(tree.run()[0])
    before = dict(tree.store.objects)
    passed = tree.doit("test", "-i", "web")
    assert passed.returncode == 0 and re.search(r"\[web\] ami-\w+ passed: 3 passed",
                                                passed.stdout), passed.stdout
    tree.tests.scripts["web"] = Script(failed=("test_web_limits",))
    failed = tree.doit("test", "-i", "web")
    assert failed.returncode == REJECTED
    assert "test: the current AMI of web in channel main failed its tests (nothing moved)" \
        in failed.stdout + failed.stderr
    assert tree.store.objects == before
    assert "test -i wbe: no such image in amis.yaml: did you mean web?" in \
        tree.doit("test", "-i", "wbe").stderr + tree.doit("test", "-i", "wbe").stdout
