"""The acceptance stage for real: a test instance launched in the emulator,
the sandbox's stand-in SSH server with the run's key, pytest with testinfra
over paramiko, the JUnit report and log kept beside the build log, and the
clean-up, under a failing test, a failing AWS call at the proxy, and Ctrl-C.
Packer is the scripted one (the e2e tests run the real one)."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
from pathlib import Path

import pytest

from support.inproc import Tree
from support.project import ok
from tasks.adapters.signals import Interrupts
from tasks.adapters.testrun import Pytest
from tasks.core.errors import FAILED, INTERRUPTED, REJECTED, AmiError


@pytest.fixture
def real(tree: Tree) -> Tree:
    """The example tree whose tests really run, against the stand-in."""
    tree.tests = Pytest()
    return tree


def base_only(app) -> None:
    app.builder.pull()
    app.builder.resolve_source()
    app.builder.bring_up_to_date("base")


def left(aws) -> dict[str, list[str]]:
    """What the stage made that is still there."""
    instances = [i["InstanceId"] for r in aws.ec2.describe_instances(Filters=[
        {"Name": "tag:Purpose", "Values": ["amis-test"]}])["Reservations"]
        for i in r["Instances"] if i["State"]["Name"] != "terminated"]
    keys = [k["KeyName"] for k in aws.ec2.describe_key_pairs()["KeyPairs"]
            if k["KeyName"].startswith("amis-test-")]
    groups = [g["GroupName"] for g in aws.ec2.describe_security_groups()["SecurityGroups"]
              if g["GroupName"].startswith("amis-test-")]
    return {k: v for k, v in {"instances": instances, "key pairs": keys,
                              "security groups": groups}.items() if v}


def test_the_tests_run_over_ssh_on_the_stand_in_and_everything_is_removed(real: Tree, aws,
                                                                          tmp_path, monkeypatch):
    keys = tmp_path / "tmp"           # this run's temporary files, apart from other tests'
    keys.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(keys))
    app, out = real.run()
    base_only(app)
    text = out.getvalue()
    assert "sandbox: each image's tests run over SSH against a stand-in on this machine " \
           "(127.0.0.1), not on the instance: this proves the launch, the SSH transport with " \
           "the run's key, the gate and the clean-up, not the AMI's content" in text, text
    record = json.loads(real.objects()["channels/main/base.json"])
    tests = record["tests"]
    # the one test that holds anywhere ran; those for a real instance were skipped, and said so
    assert tests["passed"] and tests["counts"]["passed"] == 1 and tests["counts"]["skipped"] > 5
    logs = real.path / ".amis/logs"
    junit = logs / tests["log"].replace(".log", ".xml")
    assert (logs / tests["log"]).is_file() and junit.is_file()
    assert "needs a real instance of the AMI; the sandbox's stand-in" in junit.read_text()
    assert left(aws) == {}
    assert not list((real.path / ".amis/stage").glob("base-tests*"))
    made = list(keys.glob("amis-test-*"))
    leaked = [p for p in made if (p / "key").exists()]
    assert leaked == [], "the private key was left on disk"


def test_a_failing_test_on_the_stand_in_rejects_the_ami(real: Tree, aws):
    (real.path / "ami-tests/base/test_marker.py").write_text(
        "def test_the_marker_is_there(host):\n"
        "    assert host.file('/nonexistent/amis-acceptance-marker').exists\n")
    real.commit()
    app, out = real.run()
    with pytest.raises(AmiError) as info:
        base_only(app)
    assert info.value.code == REJECTED
    assert "ami-tests/base/test_marker.py::test_the_marker_is_there" in str(info.value)
    assert "channels/main/base.json" not in real.objects() and left(aws) == {}


def test_a_key_pair_that_cannot_be_removed_is_said_and_gc_removes_it(real: Tree, aws, proxy):
    proxy.fail(lambda r: r.action == "DeleteKeyPair"
               and r.form("KeyName").startswith("amis-test-"))
    app, out = real.run({"AWS_ENDPOINT_URL": proxy.url})
    base_only(app)                       # the build is good: its leftover is no reason to fail
    assert re.search(r"\[base\] could not remove the test's key pair amis-test-base-\S+ "
                     r"\(deleting key pair .*: 500: .*: a fault on AWS's side: run again\): "
                     r"`doit gc --apply` removes test leftovers",
                     out.getvalue()), out.getvalue()
    assert list(left(aws)) == ["key pairs"]
    proxy.clear()
    done = ok(real.doit("gc", "--leftover-hours", "0", "--apply"))
    assert re.search(r"removed leftover: eu-west-1: key pair amis-test-base-", done.stdout)
    assert left(aws) == {}


def test_aws_failing_mid_way_fails_the_stage_and_removes_what_it_made(real: Tree, aws, proxy):
    looks = proxy.fail(lambda r: r.action == "DescribeInstances"
                       and r.form("Filter.1.Name") == "instance-id")   # every look, retries too
    app, out = real.run({"AWS_ENDPOINT_URL": proxy.url})
    with pytest.raises(AmiError) as info:
        base_only(app)
    assert info.value.code == FAILED
    assert re.fullmatch(r"image base: testing ami-\w+: describing i-\w+: 500: .*: a fault on "
                        r"AWS's side: run again; nothing published", str(info.value))
    assert left(aws) == {} and "channels/main/base.json" not in real.objects()
    proxy.rules.remove(looks)
    # the AMI was not judged: the next run tests it, without building again
    real.reset_count()
    app, _ = real.run()
    base_only(app)
    assert real.packer_builds() == []
    assert json.loads(real.objects()["channels/main/base.json"])["tests"]["passed"]


def test_ctrl_c_while_the_tests_run_stops_them_and_removes_what_the_stage_made(real: Tree, aws,
                                                                                tmp_path):
    started, fifo = tmp_path / "started", tmp_path / "release"
    os.mkfifo(fifo)
    (real.path / "ami-tests/base/test_wait.py").write_text(
        "def test_waits_for_the_release():\n"
        f"    open({str(started)!r}, 'w').close()\n"
        f"    open({str(fifo)!r}).read()           # blocks until a writer comes: none does\n")
    real.commit()
    interrupts = Interrupts()
    app, _ = real.run(interrupts=interrupts)
    failure: list[BaseException] = []
    worker = threading.Thread(target=lambda: _catch(failure, lambda: base_only(app)))
    worker.start()
    watcher = threading.Event()
    while not started.exists():          # the test itself says it runs
        assert worker.is_alive(), failure
        watcher.wait(0.05)
    interrupts.interrupt()
    worker.join(60)
    assert not worker.is_alive()
    assert isinstance(failure[0], AmiError) and failure[0].code == INTERRUPTED, failure
    assert left(aws) == {} and "channels/main/base.json" not in real.objects()


def _catch(into: list[BaseException], work) -> None:
    try:
        work()
    except BaseException as err:        # noqa: BLE001 - the test reads it
        into.append(err)
