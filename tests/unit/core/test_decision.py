"""The decision, without AWS: plain records in, verdicts out."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tasks.core.decision import (BUILD, KEEP, RESOLVE, REUSE, TO_BUILD, TO_RESOLVE, TO_REUSE,
                                 UP_TO_DATE, Known, decide)
from tasks.core.digest import image_digest
from tasks.core.graph import parse_graph
from tasks.core.records import Promotion, Record

NOW = datetime(2026, 11, 24, tzinfo=timezone.utc)
SOURCE_AMI = "ami-00000001"
SPEC = {"ami": SOURCE_AMI}
MANIFESTS = {"base": {"ansible/base.yaml": "1" * 64}, "web": {"ansible/web.yaml": "2" * 64}}
SETTINGS = {"base": {"regions": ["eu-west-1"]}, "web": {"regions": ["eu-west-1"]}}


@pytest.fixture
def graph(tmp_path: Path):
    for rel in ("packer/base_ami.json", "packer/web_ami.json",
                "ansible/base_ami.yaml", "ansible/web_ami.yaml"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("{}")
    data = {"region": "eu-west-1", "source": {"name": "centos", "ami": SOURCE_AMI},
            "images": {"base": {"parent": "centos", "max_age_days": 30},
                       "web": {"parent": "base"}}}
    return parse_graph(data, tmp_path / "amis.yaml", tmp_path)


def digest_of(image: str, parent_ami: str) -> str:
    return image_digest(MANIFESTS[image], parent_ami, SETTINGS[image])


def record(image: str, ami: str, parent_ami: str, *, digest: str | None = None,
           built: str = "2026-11-20T00:00:00+00:00", **extra) -> Record:
    return Record(image=image, region="eu-west-1", amis={"eu-west-1": ami},
                  digest=digest or digest_of(image, parent_ami),
                  parent={"image": "?", "ami": parent_ami}, build_started=built,
                  build_finished=built, inputs=dict(MANIFESTS[image]),
                  settings=SETTINGS[image], **extra)


SOURCE = Record(image="centos", region="eu-west-1", amis={"eu-west-1": SOURCE_AMI},
                digest="0" * 64, source={**SPEC, "resolved": "pinned"})
BASE = record("base", "ami-0000000b", SOURCE_AMI)
WEB = record("web", "ami-0000000c", "ami-0000000b")


def known(records, by_digest=None, amis=None, **kw) -> Known:
    return Known(channel="main", records=records, by_digest=by_digest or {},
                 amis=amis if amis is not None else {"ami-0000000b": True, "ami-0000000c": True},
                 source_ami=SOURCE_AMI, source_how="pinned", source_spec=SPEC, now=NOW, **kw)


def verdicts(graph, k: Known):
    result = decide(graph, k, MANIFESTS, SETTINGS)
    assert result.complete, (result.need_digests, result.need_amis)
    return result.verdicts


def test_unchanged_inputs_keep_their_amis(graph):
    v = verdicts(graph, known({"centos": SOURCE, "base": BASE, "web": WEB}))
    assert [(v[n].action, v[n].status) for n in ("centos", "base", "web")] == [
        (KEEP, UP_TO_DATE)] * 3
    assert v["web"].ami == "ami-0000000c" and v["web"].reason.startswith("digest ")


def test_an_image_asked_to_rebuild_builds_and_what_is_built_on_it_follows(graph):
    v = verdicts(graph, known({"centos": SOURCE, "base": BASE, "web": WEB},
                              rebuild=frozenset({"base"})))
    assert (v["base"].action, v["base"].cause, v["base"].reason) == (
        BUILD, "rebuild", "asked to build again (--rebuild)")
    assert v["base"].digest == BASE.digest and v["base"].ami is None
    assert (v["web"].action, v["web"].reason) == (BUILD, "parent base builds first")
    assert v["centos"].action == KEEP


def test_a_new_channel_resolves_the_source_and_reuses_by_digest(graph):
    """A branch with no records of its own reuses what main built, because
    the source resolves without a record and digests are looked up."""
    k = known({}, by_digest={("base", BASE.digest): BASE, ("web", WEB.digest): WEB})
    v = verdicts(graph, k)
    assert (v["centos"].action, v["centos"].status) == (RESOLVE, TO_RESOLVE)
    assert (v["base"].action, v["base"].status, v["base"].cause) == (REUSE, TO_REUSE, "by-digest")
    assert v["web"].action == REUSE and v["web"].ami == "ami-0000000c"


def test_the_decision_asks_for_what_it_needs_level_by_level(graph):
    first = decide(graph, known({}), MANIFESTS, SETTINGS)
    assert first.need_digests == {("base", BASE.digest)} and "web" not in first.verdicts
    second = decide(graph, known({}, by_digest={("base", BASE.digest): BASE}, amis={}),
                    MANIFESTS, SETTINGS)
    assert second.need_amis == {("eu-west-1", "ami-0000000b", "base", BASE.digest)}
    assert "base" not in second.verdicts


def test_never_built_is_missing(graph):
    v = verdicts(graph, known({}, by_digest={("base", BASE.digest): None}))
    assert (v["base"].action, v["base"].cause, v["base"].status) == (BUILD, "missing", TO_BUILD)
    assert (v["web"].action, v["web"].cause, v["web"].status) == (BUILD, "parent", TO_BUILD)
    assert v["web"].reason == "parent base builds first" and v["web"].digest is None


def test_changed_settings_rebuild_and_say_which(graph):
    """A sandbox build's record, planned outside the sandbox, names why."""
    old = replace(BASE, digest="e" * 64, settings={**SETTINGS["base"], "sandbox": True})
    v = verdicts(graph, known({"base": old, "web": WEB},
                              by_digest={("base", BASE.digest): None}))
    assert v["base"].reason == "build settings changed (sandbox)"


def test_a_child_names_its_own_refused_ami_besides_its_parent(graph):
    old = replace(BASE, digest="e" * 64, inputs={"ansible/base.yaml": "9" * 64})
    v = verdicts(graph, known({"base": old, "web": WEB},
                              by_digest={("base", BASE.digest): None},
                              refused={"ami-0000000c": "AMI ami-0000000c (eu-west-1) was revoked"}))
    assert v["web"].reason == "parent base builds first; AMI ami-0000000c (eu-west-1) was revoked"


def test_changed_inputs_rebuild_and_say_which(graph):
    old = replace(BASE, digest="e" * 64, inputs={"ansible/base.yaml": "9" * 64})
    v = verdicts(graph, known({"base": old, "web": WEB},
                              by_digest={("base", BASE.digest): None}))
    assert (v["base"].action, v["base"].status) == (BUILD, TO_BUILD)
    assert v["base"].reason == "changed ansible/base.yaml"
    assert v["web"].cause == "parent" and v["web"].status == TO_BUILD


def test_an_earlier_build_of_these_inputs_is_reused(graph):
    old = replace(BASE, digest="e" * 64)
    earlier = replace(BASE, amis={"eu-west-1": "ami-000000aa"}, git={"branch": "topic"})
    v = verdicts(graph, known({"base": old}, amis={"ami-000000aa": True}, by_digest={
        ("base", BASE.digest): earlier, ("web", digest_of("web", "ami-000000aa")): None}))
    assert v["base"].action == REUSE and v["base"].record is earlier
    assert v["base"].reason == "an earlier build has these inputs: ami-000000aa (built on topic)"


def test_a_deregistered_ami_is_gone_and_rebuilt(graph):
    v = verdicts(graph, known({"base": BASE}, by_digest={("base", BASE.digest): BASE},
                              amis={"ami-0000000b": False}))
    assert (v["base"].action, v["base"].cause, v["base"].status) == (BUILD, "gone", TO_BUILD)
    assert v["base"].reason == "AMI ami-0000000b (eu-west-1) no longer exists"


def test_too_old_rebuilds_even_with_equal_inputs(graph):
    old = replace(BASE, build_started="2026-09-01T00:00:00+00:00",
                  build_finished="2026-09-01T00:00:00+00:00")
    v = verdicts(graph, known({"base": old}))
    assert (v["base"].action, v["base"].cause) == (BUILD, "too-old")
    assert v["base"].reason.startswith("older than 30 days")


def test_a_promotion_holds_until_the_channels_inputs_change(graph):
    candidate = replace(WEB, digest="c" * 64, amis={"eu-west-1": "ami-000000cc"})
    promoted = replace(candidate, promotion=Promotion(
        from_channel="candidate", by="alice", at="2026-11-23T00:00:00+00:00",
        replaced_ami=WEB.ami, replaced_digest=WEB.digest))
    amis = {"ami-0000000b": True, "ami-000000cc": True}
    v = verdicts(graph, known({"base": BASE, "web": promoted}, amis=amis))
    assert (v["web"].action, v["web"].cause, v["web"].ami) == (KEEP, "promoted", "ami-000000cc")
    assert "promoted from candidate by alice" in v["web"].reason
    assert "holds until main's inputs change" in v["web"].reason
    # main's web inputs change: the promotion ends, and the plan says what it replaces
    manifests = {**MANIFESTS, "web": {"ansible/web.yaml": "3" * 64}}
    later = decide(graph, known({"base": BASE, "web": promoted}, amis=amis,
                                by_digest={("web", image_digest(manifests["web"], BASE.ami,
                                                                SETTINGS["web"])): None}),
                   manifests, SETTINGS).verdicts
    assert later["web"].action == BUILD
    assert later["web"].reason.startswith(
        "changed ansible/web.yaml since the promotion from candidate"), later["web"].reason
    # the parent moved on since the promotion: that is what it says
    newer_base = replace(BASE, amis={"eu-west-1": "ami-000000dd"})
    moved = decide(graph, known({"base": newer_base, "web": promoted},
                                amis={**amis, "ami-000000dd": True},
                                by_digest={("web", image_digest(MANIFESTS["web"], "ami-000000dd",
                                                                SETTINGS["web"])): None}),
                   MANIFESTS, SETTINGS)
    assert moved.verdicts["web"].reason.startswith(
        "parent AMI ami-0000000b -> ami-000000dd since the promotion from candidate"), \
        moved.verdicts["web"].reason


def test_a_promoted_record_older_than_max_age_days_is_rebuilt(graph):
    candidate = replace(BASE, digest="c" * 64, amis={"eu-west-1": "ami-000000cc"},
                        build_started="2026-09-01T00:00:00+00:00",
                        build_finished="2026-09-01T00:00:00+00:00")
    promoted = replace(candidate, promotion=Promotion(
        from_channel="candidate", by="alice", at="2026-11-23T00:00:00+00:00",
        replaced_ami=BASE.ami, replaced_digest=BASE.digest))
    v = verdicts(graph, known({"base": promoted}, amis={"ami-000000cc": True}))
    assert (v["base"].action, v["base"].cause) == (BUILD, "too-old")
    assert v["base"].reason.startswith("older than 30 days (")
    assert v["base"].reason.endswith("), though promoted from candidate")


def test_offline_keeps_matching_records_unchecked(graph):
    v = verdicts(graph, known({"centos": SOURCE, "base": BASE, "web": WEB}, amis={},
                              offline=True))
    assert v["web"].action == KEEP and "offline: AMI not checked" in v["web"].reason


def test_a_moved_source_rebuilds_the_tree(graph):
    moved = Known(channel="main", records={"centos": SOURCE, "base": BASE, "web": WEB},
                  by_digest={("base", digest_of("base", "ami-00000002")): None},
                  amis={"ami-0000000b": True, "ami-0000000c": True},
                  source_ami="ami-00000002", source_how="newest of 'x'", source_spec={}, now=NOW)
    v = verdicts(graph, moved)
    assert v["centos"].action == RESOLVE
    assert v["centos"].reason.startswith("source moved: ami-00000001 -> ami-00000002")
    assert v["base"].action == BUILD and "parent AMI ami-00000001 -> ami-00000002" in v["base"].reason
    assert v["web"].cause == "parent"
