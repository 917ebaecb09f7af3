"""The lookup behind the decision, in process on the fakes: what it fetches,
and when."""

from __future__ import annotations

import json
import re
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
