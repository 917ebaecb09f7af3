"""The lookup behind the decision, in process on the fakes: what it fetches,
and when."""

from __future__ import annotations

import json
import re
from typing import Any, Callable
from dataclasses import replace
from datetime import datetime, timezone

import pytest


def test_builds_deciding_at_once_fetch_each_digest_record_once(tree, monkeypatch):
    """Threads of one run (doit -n N -P thread) that decide together share one
    lookup: the others wait for it instead of fetching the same records."""
    import threading
    from tasks.core import decision
    app, _ = tree.run()
    app.lookup.pull()
    threads = 6
    entered, fetched = [], []
    pure, fetch = decision.decide, app.registry.by_digest
    everyone_deciding = threading.Event()

    def counting_decide(*args):
        entered.append(1)
        if len(entered) >= threads:
            everyone_deciding.set()
        return pure(*args)

    def counting_fetch(wanted):
        everyone_deciding.wait(10)       # without the shared lookup, all would be here now
        fetched.extend(wanted)
        return fetch(wanted)

    monkeypatch.setattr(decision, "decide", counting_decide)
    monkeypatch.setattr(app.registry, "by_digest", counting_fetch)
    workers = [threading.Thread(target=app.lookup.decision) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert fetched and len(fetched) == len(set(fetched)), fetched


def built(tree):
    from support.fakes import build_all
    build_all(tree.run()[0])
    tree.packer.builds.clear()
    return json.loads(tree.store.objects["channels/main/web.json"])


def verdict(tree, image: str):
    app, _ = tree.run()
    return app.lookup.decision().verdicts[image], app


def test_a_no_op_lists_the_channel_and_the_revocations_and_describes_once_per_region(tree):
    built(tree)
    tree.store.calls.clear()
    tree.ec2.calls.clear()
    app, _ = tree.run()
    decision = app.lookup.decision()
    assert not decision.builds()
    assert sorted(c for c in tree.store.calls if c[0] in ("listing", "check")) == [
        ("check", "revocations/"), ("listing", "channels/main/")]      # asked at once
    assert not [c for c in tree.store.calls if c[0] == "get"]      # local copies are the same
    described = [c for c in tree.ec2.calls if c[0] == "describe"]
    assert sorted(c[1] for c in described) == ["eu-west-1", "us-east-1"]


def waiting_for(timeout: float = 5) -> tuple[Any, Callable[..., None], list[bool]]:
    """A hook that waits (at most ``timeout``) for another thread to set the
    event, and notes whether it did: what was asked at once."""
    import threading
    event, seen = threading.Event(), []

    def wait(*_):
        seen.append(event.wait(timeout))
    return event, wait, seen


def test_a_no_op_asks_git_s3_and_ec2_at_once(tree, monkeypatch):
    """git (which names the channel) runs while the bucket is checked, and
    the AMIs the local records name are described while the channel is
    listed: a no-op waits for the slowest of them, not for their sum."""
    built(tree)
    app, _ = tree.run()
    checking, git_waits, asked_git = waiting_for()
    described, listing_waits, listed = waiting_for()
    info, describe = tree.git.info, tree.ec2.describe

    def asking_git(*args, **kwargs):
        git_waits()
        return info(*args, **kwargs)

    def describing(*args, **kwargs):
        described.set()
        return describe(*args, **kwargs)

    monkeypatch.setattr(tree.git, "info", asking_git)
    monkeypatch.setattr(tree.ec2, "describe", describing)
    tree.store.before.append(lambda op, key: checking.set() if op == "check" else
                             listing_waits() if key.startswith("channels/") else None)
    tree.ec2.calls.clear()
    app.lookup.pull()
    assert asked_git == [True], "the bucket check waited for git"
    assert listed == [True], "EC2 waited for the channel's listing"
    assert len([c for c in tree.ec2.calls if c[0] == "describe"]) == 2     # once per region


def test_a_record_that_moved_since_the_local_copy_has_its_own_ami_looked_up(tree):
    """The AMIs described early are the local copies': a record another agent
    published since names an AMI of its own, which is looked up anew."""
    web = built(tree)
    moved = tree.ec2.add_ami("eu-west-1", tags={"ManagedBy": "amis-doit", "Image": "web",
                                                "Digest": web["digest"]})
    tree.ec2.images.pop(("eu-west-1", moved.id))          # named by the record, gone from EC2
    tree.store.objects["channels/main/web.json"] = json.dumps(
        {**web, "amis": {**web["amis"], "eu-west-1": moved.id}}).encode()
    tree.ec2.calls.clear()
    app, _ = tree.run()
    app.lookup.pull()
    assert app.lookup.facts.amis[moved.id] is False         # not taken from the early look
    assert not app.lookup.usable(app.lookup.record("web"))
    asked = [set(c[2]) for c in tree.ec2.calls if c[0] == "describe" and c[1] == "eu-west-1"]
    early = [a for a in asked if web["amis"]["eu-west-1"] in a and moved.id not in a]
    assert early and [a for a in asked if moved.id in a], asked


def test_an_early_describe_that_fails_is_asked_again_and_its_error_said(tree):
    from tasks.core.errors import AmiError
    built(tree)
    tree.ec2.fail["describe"] = [AmiError("EC2 throttled the early describe")]
    app, _ = tree.run()
    assert app.lookup.pull() and app.lookup.usable(app.lookup.record("web"))
    tree.ec2.fail["describe"] = AmiError("looking up recorded AMIs in eu-west-1: AccessDenied")
    app, _ = tree.run()
    with pytest.raises(AmiError, match="looking up recorded AMIs in eu-west-1: AccessDenied"):
        app.lookup.pull()


def test_an_ec2_that_cannot_be_reached_is_said_once_its_early_describe_gives_up(tree):
    """The early describe spent its retries on an unreachable EC2: its error is
    the pull's, with no second round of the same waits."""
    from tasks.adapters.aws import Unreachable
    built(tree)
    tree.ec2.fail["describe"] = Unreachable("looking up recorded AMIs: cannot reach EC2")
    tree.ec2.calls.clear()
    app, _ = tree.run()
    with pytest.raises(Unreachable, match="cannot reach EC2"):
        app.lookup.pull()
    described = [c[1] for c in tree.ec2.calls if c[0] == "describe"]
    assert sorted(described) == ["eu-west-1", "us-east-1"], described      # once per region


def test_an_ami_gone_from_ec2_is_rebuilt_and_plan_says_so(tree):
    web = built(tree)
    del tree.ec2.images["us-east-1", web["amis"]["us-east-1"]]
    found, app = verdict(tree, "web")
    assert found.builds and found.cause == "gone", found
    assert web["amis"]["us-east-1"] in found.reason
    assert not app.lookup.usable(app.lookup.record("web"))


@pytest.mark.parametrize("change, why", [
    ({"tags": {"Image": "web", "Digest": "0" * 64, "ManagedBy": "amis-doit"}},
     r"is not what the record says \(tags Digest="),
    ({"owner": "999988887777"}, r"belongs to account 999988887777, not this one"),
    ({"deprecated_at": datetime(2026, 1, 1, tzinfo=timezone.utc)},
     r"is deprecated in EC2 since 2026-01-01T00:00:00\+00:00, and the registry has no "
     r"revocation of it"),
])
def test_a_record_is_trusted_no_further_than_its_ami(tree, change, why):
    web = built(tree)
    key = ("eu-west-1", web["amis"]["eu-west-1"])
    tree.ec2.images[key] = replace(tree.ec2.images[key], **change)
    found, app = verdict(tree, "web")
    assert found.builds, found
    assert re.search(why, app.lookup.facts.refused[key[1]]), app.lookup.facts.refused


def test_a_revoked_ami_is_not_kept_and_the_revocation_is_named(tree):
    web = built(tree)
    app, _ = tree.run()
    app.registry.revoke({"ami": web["amis"]["eu-west-1"], "image": "web", "by": "sec",
                         "at": "2026-12-01T00:00:00+00:00", "reason": "CVE-1", "with": "x"})
    found, app = verdict(tree, "web")
    assert found.builds and "revoked by sec at 2026-12-01T00:00:00+00:00: CVE-1" in \
        app.lookup.facts.refused[web["amis"]["eu-west-1"]]


def test_offline_planning_reads_the_local_records_and_says_why(tree):
    built(tree)
    tree.ec2.calls.clear()
    app, _ = tree.run({"AMI_BUCKET": None, "AMI_SANDBOX": None})
    status = app.lookup.pull(offline_ok=True)
    assert status == {} and app.lookup.facts.offline == "AMI_BUCKET is not set"
    assert app.lookup.record("web").ami == json.loads(
        (tree.path / ".amis/records/web.json").read_text())["amis"]["eu-west-1"]
    assert tree.ec2.calls == []


def test_a_source_filter_resolves_to_the_newest_match(tree):
    from tasks.state.lookup import resolve_source
    older = tree.ec2.add_ami("eu-west-1", owner="125523088429", name="CentOS 7 2026-01",
                             created=datetime(2026, 1, 1, tzinfo=timezone.utc))
    newer = tree.ec2.add_ami("eu-west-1", owner="125523088429", name="CentOS 7 2026-06",
                             created=datetime(2026, 6, 1, tzinfo=timezone.utc))
    tree.ec2.add_ami("eu-west-1", owner="125523088429", name="Fedora 40",
                     created=datetime(2026, 9, 1, tzinfo=timezone.utc))
    app, _ = tree.run()
    source = app.graph.source
    filtered = type(source)(**{**source.__dict__, "ami": None,
                               "owners": ("125523088429",), "name_pattern": "CentOS 7 *"})
    assert resolve_source(tree.ec2, filtered, "eu-west-1", sandbox=False) == \
        (newer.id, "newest of 'CentOS 7 *': CentOS 7 2026-06")
    assert older.id != newer.id


def test_planning_offline_says_whose_records_it_planned_from(tree):
    """The local records are the last pull's: offline, the plan says which
    registry and channel they mirror, and when they are not this one's."""
    import json as jsonlib
    from tasks.adapters.aws import Unreachable
    from tasks.state.lookup import MIRROR
    built(tree)
    app, _ = tree.run()
    app.lookup.pull()
    mirror = tree.path / ".amis/records" / MIRROR
    identity = app.registry.identity()
    assert jsonlib.loads(mirror.read_text()) == {"registry": identity, "channel": "main"}
    app, _ = tree.run({"AMI_BUCKET": None, "AMI_SANDBOX": None})
    app.lookup.pull(offline_ok=True)
    assert app.lookup.facts.mirror == \
        f"planned from the local records of channel main in {identity}"
    mirror.write_text(jsonlib.dumps({"registry": "s3://someone-else/amis", "channel": "main"}))
    tree.store.before.append(lambda op, key: (_ for _ in ()).throw(Unreachable("no network")))
    app, _ = tree.run()
    app.lookup.pull(offline_ok=True)
    assert (app.lookup.facts.offline, app.lookup.facts.mirror) == ("no network", (
        "planned from the local records of channel main in s3://someone-else/amis, "
        f"not this registry's ({identity})"))
    mirror.unlink()
    app, _ = tree.run()
    app.lookup.pull(offline_ok=True)
    assert app.lookup.facts.mirror == ("planned from local records whose registry is unknown "
                                       "(no pull has named it)")
