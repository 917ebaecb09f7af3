"""Agents whose clocks are ten minutes off, against the emulator: the locks,
the check that an AMI is this build's, and "which build started later" are
judged by AWS's clock (S3's Date and LastModified, EC2's CreationDate), so
a skewed agent agrees with the others. The agent's clock is patched; the
emulator keeps the true time."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from support.inproc import Tree, next_second
from support.project import BUCKET, commit, current_ami, ok
from tasks.core.clock import Clock

SKEW = 600


def skewed(monkeypatch, seconds: float) -> Clock:
    """This agent's clock, ``seconds`` off: the run's and the locks' module."""
    monkeypatch.setattr("tasks.state.locks.time", type("AgentTime", (), {
        "time": staticmethod(lambda: time.time() + seconds),
        "sleep": staticmethod(time.sleep)}))
    return Clock(local=lambda: time.time() + seconds)


def base_only(app) -> None:
    app.builder.pull()
    app.builder.resolve_source()
    app.builder.bring_up_to_date("base")


def stamped_truly(record: dict) -> None:
    for key in ("build_started", "build_finished"):
        assert abs(datetime.fromisoformat(record[key]).timestamp() - time.time()) < 60, record


def test_an_agent_ten_minutes_ahead_waits_for_a_live_lock_then_trusts_its_own_ami(
        tree: Tree, aws, monkeypatch):
    ok(tree.doit("ami:centos"))
    digest = tree.digest("base")
    key = f"locks/base/{digest}.json"
    aws.s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(
        {"owner": "other-agent:99", "ttl": 300, "acquired": time.time(),
         "expires": time.time() + 300}))
    app, out = tree.run(clock=skewed(monkeypatch, SKEW))
    app.builder.pull()
    with app.locks.held_if_free("base", digest, app.say) as (lock, holder):
        assert lock is None and holder == "other-agent:99", out.getvalue()
    aws.s3.delete_object(Bucket=BUCKET, Key=key)          # the other agent gave up
    app.builder.resolve_source()
    app.builder.bring_up_to_date("base")                  # vetted: created after it began
    assert tree.packer_builds() == ["base"], out.getvalue()
    assert current_ami(aws, "base") == app.lookup.record("base").ami
    stamped_truly(tree.current("base"))


@pytest.mark.parametrize("skew", [-SKEW, SKEW])
def test_a_later_commit_built_on_a_skewed_agent_is_published(tree: Tree, aws, monkeypatch,
                                                              tmp_path, skew):
    ok(tree.doit("ami:base"))
    first = current_ami(aws, "base")
    tree.append("ansible/roles/common/defaults/main.yml", "\nclock_test: 1\n")
    commit(tree.path, "a later change to base")
    next_second()
    later = tree.clone(tmp_path / "agent-b")
    app, out = later.run(clock=skewed(monkeypatch, skew))
    base_only(app)
    assert "a build that started later" not in out.getvalue(), out.getvalue()
    assert current_ami(aws, "base") not in (first, None)
    assert current_ami(aws, "base") == app.lookup.record("base").ami
    stamped_truly(tree.current("base"))


def test_a_skewed_agent_deprecates_at_a_time_ahead_of_aws(tree: Tree, aws, monkeypatch, proxy):
    """EC2 refuses a DeprecateAt in the past: an agent an hour behind still
    asks for one ahead of AWS's clock, as the replies' Date say."""
    from datetime import timedelta, timezone

    ok(tree.doit("ami:base"))
    proxy.answer(lambda r: r.action == "EnableImageDeprecation", (
        b'<EnableImageDeprecationResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
        b'<requestId>r</requestId><return>true</return></EnableImageDeprecationResponse>'))
    app, out = tree.run(env={"AWS_ENDPOINT_URL": proxy.url}, clock=skewed(monkeypatch, -3600))
    app.revoker.revoke("", "base", "drill", undo=False, disable=False)
    sent = [r for r in proxy.seen if r.action == "EnableImageDeprecation"]
    at = datetime.fromisoformat(sent[0].form("DeprecateAt").replace("Z", "+00:00"))
    now = datetime.now(timezone.utc)
    assert len(sent) == 1 and now < at <= now + timedelta(minutes=3), (at, out.getvalue())
