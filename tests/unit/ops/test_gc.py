"""gc on the fakes: the facts it gathers from EC2, SSM and the registry, and
``--apply`` deleting exactly what the dry run said would go, over generated
worlds of AMIs, records, instances, launch templates and shares."""

from __future__ import annotations

import re
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

from support.fakes import FakeTree
from tasks.core.cloud import Grant
from tasks.core.records import Record

NOW = datetime.now(timezone.utc)
TAGS = {"ManagedBy": "amis-doit", "Digest": "d" * 64}


def managed(tree: FakeTree, image: str, days_old: int, region: str = "eu-west-1",
            parent: str | None = None) -> str:
    tags = {**TAGS, "Image": image, **({"ParentAmi": parent} if parent else {})}
    return tree.ec2.add_ami(region, tags=tags, created=NOW - timedelta(days=days_old)).id


def current(tree: FakeTree, image: str, ami: str, channel: str = "main") -> None:
    app, _ = tree.run()
    app.registry.publish(Record(image=image, region="eu-west-1", amis={"eu-west-1": ami},
                                digest="d" * 64), channel, new_build=True)


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
    """(image, days old, parent index or None, current?, launched?, shared?) per AMI."""
    n = draw(st.integers(1, 8))
    amis = []
    for i in range(n):
        amis.append((draw(st.sampled_from(["base", "web", "gone"])), draw(st.integers(0, 40)),
                     draw(st.one_of(st.none(), st.integers(0, i - 1))) if i else None,
                     draw(st.booleans()), draw(st.sampled_from([None, "instance", "template"])),
                     draw(st.booleans())))
    return amis


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds(), st.integers(1, 3), st.sampled_from([0, 14]), st.integers(0, 6))
def test_apply_deletes_exactly_what_the_dry_run_said_and_nothing_in_use(world, keep, days, most):
    with tempfile.TemporaryDirectory() as scratch:
        tree = FakeTree.example(Path(scratch) / "repo")
        made: list[str] = []
        in_use: set[str] = set()
        for i, (image, age, parent, is_current, launched, shared) in enumerate(world):
            ami = managed(tree, image, age, parent=made[parent] if parent is not None else None)
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
