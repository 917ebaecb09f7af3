"""gc on the fakes: the facts it gathers from EC2, SSM and the registry, and
``--apply`` deleting exactly what the dry run said would go, over generated
worlds of AMIs, records, instances, launch templates and shares."""

from __future__ import annotations

import hashlib
import re
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from support.fakes import FakeTree
from tasks.core.cloud import Grant
from tasks.core.records import Record

NOW = datetime.now(timezone.utc)
REGISTRY = "s3://memory/"                      # FakeTree's: a MemoryStore, no prefix


def managed(tree: FakeTree, image: str, days_old: int, region: str = "eu-west-1",
            parent: str | None = None, registry: str | None = REGISTRY,
            recorded: bool = True) -> str:
    """An AMI this tool built: tagged, and (``recorded``) named by the digest
    record of its image and digest."""
    digest = hashlib.sha256(f"{image}{days_old}{len(tree.ec2.images)}".encode()).hexdigest()
    tags = {"ManagedBy": "amis-doit", "Image": image, "Digest": digest,
            **({"Registry": registry} if registry else {}),
            **({"ParentAmi": parent} if parent else {})}
    ami = tree.ec2.add_ami(region, tags=tags, created=NOW - timedelta(days=days_old)).id
    if recorded:
        record = Record(image=image, region=region, amis={region: ami}, digest=digest)
        tree.store.put(f"digests/{image}/{digest}.json", record.body())
    return ami


def current(tree: FakeTree, image: str, ami: str, channel: str = "main") -> None:
    app, _ = tree.run()
    digest = tree.ec2.ami("eu-west-1", ami).tags["Digest"]
    app.registry.publish(Record(image=image, region="eu-west-1", amis={"eu-west-1": ami},
                                digest=digest), channel, new_build=True)


def test_gather_finds_what_launches_each_ami_as_ec2_would(tree):
    used, by_template, by_ssm, by_label, idle = (managed(tree, "web", 30 + n) for n in range(5))
    tree.ec2.add_instance("eu-west-1", used, state="stopped")
    tree.ec2.add_launch_template("eu-west-1", "web-prod", by_template, "resolve:ssm:/web/ami",
                                 "resolve:ssm:/web/ami:golden")
    tree.ssm.put("eu-west-1", "/web/ami", by_label)
    tree.ssm.put("eu-west-1", "/web/ami", by_ssm)
    tree.ssm.label("eu-west-1", "/web/ami", "golden", 1)
    tree.ec2.share("eu-west-1", idle, Grant("UserId", "111122223333"))
    app, _ = tree.run()
    facts = app.collector.gather()
    assert facts.used == {used: f"used by instance {tree.ec2.running['eu-west-1'][0].id}",
                          by_template: "referenced by launch template web-prod v1",
                          by_ssm: "referenced by launch template web-prod v2",
                          by_label: "referenced by launch template web-prod v3"}
    assert facts.shared == {idle: ("111122223333",)} and facts.doubts["eu-west-1"] == ()


def test_a_reference_that_cannot_be_read_puts_its_region_in_doubt(tree):
    old = managed(tree, "web", 100)
    managed(tree, "web", 50)
    tree.ec2.add_launch_template("eu-west-1", "web-prod", "resolve:ssm:/nowhere")
    app, out = tree.run()
    app.collector.collect(apply=False, keep=1, days=0, most=20, leftover_hours=6)
    assert re.search(rf"{old} .*keep\s+cannot prove it unused: launch template web-prod v1 says "
                     r"resolve:ssm:/nowhere, and reading the parameter failed", out.getvalue())


@st.composite
def worlds(draw):
    """(image, days old, parent index or None, current?, launched?, shared?, whose) per AMI."""
    n = draw(st.integers(1, 8))
    amis = []
    for i in range(n):
        amis.append((draw(st.sampled_from(["base", "web", "gone"])), draw(st.integers(0, 40)),
                     draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None,
                     draw(st.booleans()), draw(st.sampled_from([None, "instance", "template"])),
                     draw(st.booleans()),
                     draw(st.sampled_from(["ours", "ours", "ours", "theirs", "unrecorded"]))))
    return amis


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.integers(1, 3), st.sampled_from([0, 14]), st.integers(0, 6))
def test_apply_deletes_exactly_what_the_dry_run_said_and_nothing_in_use(world, keep, days, most):
    with tempfile.TemporaryDirectory() as scratch:
        tree = FakeTree.example(Path(scratch) / "repo")
        made: list[str] = []
        in_use: set[str] = set()
        for i, (image, age, parent, is_current, launched, shared, whose) in enumerate(world):
            ami = managed(tree, image, age, parent=made[parent] if parent is not None else None,
                          registry="s3://memory/b/" if whose == "theirs" else REGISTRY,
                          recorded=whose == "ours")
            if whose != "ours":
                in_use.add(ami)                # not proven ours: never deleted
            made.append(ami)
            if is_current and image != "gone":
                current(tree, image, ami, channel=f"c{i}")
                in_use.add(ami)
            if launched == "instance":
                tree.ec2.add_instance("eu-west-1", ami)
            elif launched == "template":
                tree.ec2.add_launch_template("eu-west-1", f"lt{i}", ami)
            if shared:
                tree.ec2.share("eu-west-1", ami, Grant("UserId", "111122223333"))
            if launched or shared:
                in_use.add(ami)
        options = dict(keep=keep, days=days, most=most, leftover_hours=6)
        app, out = tree.run()
        app.collector.collect(apply=False, **options)
        planned = set(re.findall(r"\b(ami-[0-9a-f]+)\b.*would delete", out.getvalue()))
        app, out = tree.run()
        app.collector.collect(apply=True, **options)
        deleted = {c[2] for c in tree.ec2.calls if c[0] == "deregister"}
        assert deleted == planned, out.getvalue()
        assert not deleted & in_use
        assert len(deleted) <= most


def test_another_registrys_ami_in_the_account_is_kept_and_said(tree):
    """Two teams in one account (one bucket, two prefixes): team A's gc keeps
    every AMI of team B, however old, and says whose it is."""
    theirs = [managed(tree, "web", 100 + n, registry="s3://memory/teams/b/", recorded=False)
              for n in range(3)]
    unrecorded = managed(tree, "web", 90, recorded=False)
    untagged = managed(tree, "web", 80, registry=None)
    ours = [managed(tree, "web", 50 + n) for n in range(3)]
    app, out = tree.run()
    app.collector.collect(apply=True, keep=1, days=0, most=20, leftover_hours=6)
    deleted = {c[2] for c in tree.ec2.calls if c[0] == "deregister"}
    assert deleted == set(ours[1:]), out.getvalue()
    text = out.getvalue()
    for ami in theirs:
        assert re.search(rf"{ami} .*keep\s+built for registry s3://memory/teams/b/, not this one",
                         text), text
    assert re.search(rf"{unrecorded} .*keep\s+no digest record of this registry names it", text)
    assert re.search(rf"{untagged} .*keep\s+no Registry tag", text)


@pytest.mark.parametrize("kind", ["Spot Fleet request", "persistent Spot request", "EC2 Fleet"])
def test_an_ami_a_fleet_or_spot_request_launches_is_kept(tree, kind):
    """A Spot Fleet in maintain mode whose instances were interrupted still
    launches its AMI: it is in use with no instance running."""
    old = managed(tree, "web", 100)
    managed(tree, "web", 50)
    tree.ec2.add_launcher("eu-west-1", kind, "sfr-1", old)
    app, out = tree.run()
    app.collector.collect(apply=True, keep=1, days=0, most=20, leftover_hours=6)
    assert not [c for c in tree.ec2.calls if c[0] == "deregister"], out.getvalue()
    assert re.search(rf"{old} .*keep\s+referenced by {kind} sfr-1", out.getvalue())


def test_what_backs_or_shares_an_amis_snapshots_keeps_it(tree):
    shared, backing, idle = (managed(tree, "web", 100 + n) for n in range(3))
    managed(tree, "web", 10)
    snapshot = tree.ec2.ami("eu-west-1", shared).snapshots[0]
    tree.ec2.volume_grant[("eu-west-1", snapshot)] = [Grant("UserId", "111122223333")]
    # someone registered their own AMI from this AMI's snapshot
    other = tree.ec2.add_ami("eu-west-1", snapshots=0)
    tree.ec2.images[("eu-west-1", other.id)] = other.__class__(
        **{**other.__dict__, "snapshots": tree.ec2.ami("eu-west-1", backing).snapshots})
    app, out = tree.run()
    app.collector.collect(apply=True, keep=1, days=0, most=20, leftover_hours=6)
    text = out.getvalue()
    assert {c[2] for c in tree.ec2.calls if c[0] == "deregister"} == {idle}, text
    assert re.search(rf"{shared} .*keep\s+shared with 111122223333 \(snapshot {snapshot}\)", text)
    assert re.search(rf"{backing} .*keep\s+its snapshots also back {other.id}", text)


def test_an_ami_whose_image_tag_was_changed_is_kept(tree):
    """A tag writer renames an AMI's Image to a retired one: its built/ marker
    says what it was built as, and the AMI is not judged by the tag."""
    among_newest = managed(tree, "web", 100)
    app, _ = tree.run()
    tree.store.put(f"built/{among_newest}.json", b'{"ami": "%s", "image": "web"}'
                   % among_newest.encode())
    tree.ec2.tag("eu-west-1", among_newest, {"Image": "ghost"})
    app, out = tree.run()
    app.collector.collect(apply=True, keep=3, days=0, most=20, leftover_hours=6)
    assert not [c for c in tree.ec2.calls if c[0] == "deregister"], out.getvalue()
    assert re.search(rf"{among_newest} .*keep\s+tagged Image=ghost, but this registry built it "
                     "as web: its tags were changed", out.getvalue())


def test_a_revoked_ami_is_said_to_go_because_it_was_revoked(tree):
    revoked = managed(tree, "web", 1)
    managed(tree, "web", 0)
    tree.store.put(f"revocations/{revoked}.json", b"not json")
    app, out = tree.run()
    app.collector.collect(apply=False, keep=3, days=14, most=20, leftover_hours=6)
    assert re.search(rf"{revoked} .*would delete\s+revoked: ", out.getvalue()), out.getvalue()
