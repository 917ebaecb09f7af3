"""gc's retention decision, without AWS: facts in, a judgement per AMI out.
Examples for each reason an AMI stays, then properties over generated
worlds of several registries: nothing not proven this registry's, launched,
current, shared or in doubt is ever doomed, a survivor's parents survive,
and at most --max go, oldest first."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, settings, strategies as st

from tasks.core.retention import Candidate, Facts, Policy, decide

NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
REGIONS = ("eu-west-1", "us-east-1")
OURS, THEIRS = "s3://acme-amis/teams/a/", "s3://acme-amis/teams/b/"


def ami(n: int) -> str:
    return f"ami-{n:08x}"


def candidate(n: int, days_old: float, image: str = "web", region: str = "eu-west-1",
              parent: int | None = None, registry: str | None = OURS) -> Candidate:
    return Candidate(ami(n), region, image, NOW - timedelta(days=days_old),
                     ami(parent) if parent is not None else None, "d" * 64, (f"snap-{n}",),
                     registry)


def facts(*candidates: Candidate, **kw) -> Facts:
    """This registry's facts; every candidate is named by its records unless
    ``recorded`` says which are."""
    return Facts(candidates=tuple(candidates), now=NOW, registry=OURS,
                 recorded=kw.pop("recorded", frozenset(c.ami for c in candidates)),
                 held=kw.pop("held", frozenset({"web", "base"})), **kw)


def reasons(judged, n: int) -> tuple[str, ...]:
    return judged.judged(ami(n)).keep


def test_the_newest_of_each_image_and_the_young_stay_and_the_oldest_go_first():
    old = [candidate(n, 20 + n) for n in range(1, 6)]
    judged = decide(facts(*old, candidate(9, 1)), Policy(keep=2, days=14, most=2))
    assert reasons(judged, 9) == ("among the newest 2 of web", "younger than 14 days")
    assert reasons(judged, 1) == ("among the newest 2 of web",)
    assert [j.ami for j in judged.doomed] == [ami(5), ami(4)]        # oldest first, at most 2
    assert not reasons(judged, 3)                                    # next run's


def test_each_use_keeps_an_ami_and_says_what_uses_it():
    world = facts(*(candidate(n, 100) for n in range(1, 7)),
                  current={ami(1): "main"}, used={ami(2): "used by instance i-1"},
                  shared={ami(3): ("111122223333",)}, revoked=frozenset({ami(4)}))
    judged = decide(world, Policy(keep=1, days=0, most=20))
    assert "current in channel main" in reasons(judged, 1)
    assert "used by instance i-1" in reasons(judged, 2)
    assert "shared with 111122223333" in reasons(judged, 3)
    assert {j.ami for j in judged.doomed} == {ami(4), ami(5), ami(6)}
    assert "among the newest 1 of web" in reasons(judged, 1)     # not the revoked one's place


def test_what_cannot_be_proved_unused_stays_in_its_region_only():
    world = facts(candidate(1, 100), candidate(2, 90),
                  candidate(3, 100, region="us-east-1"), candidate(4, 90, region="us-east-1"),
                  doubts={"us-east-1": ("listing instances in us-east-1 failed (AccessDenied)",)})
    judged = decide(world, Policy(keep=1, days=0, most=20))
    assert reasons(judged, 3) == ("cannot prove it unused: listing instances in us-east-1 "
                                  "failed (AccessDenied)",)
    assert judged.judged(ami(3)).doubt and not judged.judged(ami(4)).doubt   # the newest
    assert [j.ami for j in judged.doomed] == [ami(1)]


def test_a_survivors_parents_survive_all_the_way_up():
    world = facts(candidate(1, 300, "base"), candidate(2, 200, "base", parent=1),
                  candidate(3, 100, "web", parent=2), candidate(4, 90, "web"),
                  used={ami(3): "used by instance i-1"})
    judged = decide(world, Policy(keep=1, days=0, most=20))
    assert "parent of kept ami-00000003" in reasons(judged, 2)
    assert "parent of kept ami-00000002" in reasons(judged, 1)


def test_a_parent_of_many_kept_names_a_few_and_counts_the_rest():
    children = [candidate(n, 100, "web", parent=1) for n in range(2, 14)]
    world = facts(candidate(1, 300, "base"), *children,
                  used={c.ami: f"used by instance i-{n}" for n, c in enumerate(children)})
    judged = decide(world, Policy(keep=1, days=0, most=20))
    assert "parent of kept ami-00000002, ami-00000003, ami-00000004 and 9 more" in \
        reasons(judged, 1)


def test_only_what_is_proven_this_registrys_may_go():
    """Team B's AMIs in the same account, one this registry has no record of
    (a forged tag), and one built before the Registry tag, all stay."""
    world = facts(candidate(1, 100), candidate(2, 100, registry=THEIRS),
                  candidate(3, 100), candidate(4, 100, registry=None), candidate(5, 1),
                  recorded=frozenset({ami(1), ami(5)}))
    judged = decide(world, Policy(keep=1, days=0, most=20))
    assert [j.ami for j in judged.doomed] == [ami(1)]
    assert reasons(judged, 2)[0] == f"built for registry {THEIRS}, not this one"
    assert reasons(judged, 3)[0].startswith("no digest record of this registry names it")
    assert reasons(judged, 4)[0].startswith("no Registry tag")
    assert "among the newest 1 of web" in reasons(judged, 5)       # theirs are not ours to rank


def test_an_image_nobody_holds_keeps_no_newest_and_is_marked_retired():
    judged = decide(facts(candidate(1, 100, "gone"), held=frozenset({"web"})),
                    Policy(keep=3, days=0, most=20))
    assert judged.judged(ami(1)).orphan and [j.ami for j in judged.doomed] == [ami(1)]


# -- properties --------------------------------------------------------------

@st.composite
def worlds(draw):
    n = draw(st.integers(1, 14))
    images = ("base", "web", "gone")
    made = []
    for i in range(1, n + 1):
        parent = draw(st.one_of(st.none(), st.integers(1, i - 1))) if i > 1 else None
        made.append(Candidate(ami(i), draw(st.sampled_from(REGIONS)),
                              draw(st.sampled_from(images)),
                              NOW - timedelta(days=draw(st.integers(0, 60)),
                                              seconds=i),       # no two alike
                              ami(parent) if parent else None, "d" * 64, (),
                              draw(st.sampled_from([OURS, OURS, OURS, THEIRS, None]))))
    ids = [c.ami for c in made]
    some = st.lists(st.sampled_from(ids), unique=True, max_size=n)
    return Facts(
        candidates=tuple(made), now=NOW, registry=OURS,
        recorded=frozenset(draw(st.lists(st.sampled_from(ids), unique=True))),
        current={a: "main" for a in draw(some)},
        held=frozenset(draw(st.lists(st.sampled_from(images), unique=True))),
        revoked=frozenset(draw(some)),
        used={a: f"used by instance i-{a}" for a in draw(some)},
        doubts={r: ("listing failed",) for r in draw(st.lists(st.sampled_from(REGIONS),
                                                              unique=True))},
        shared={a: ("111122223333",) for a in draw(some)})


policies = st.builds(Policy, keep=st.integers(1, 4), days=st.sampled_from([0, 7, 30]),
                     most=st.integers(0, 20))


@settings(max_examples=300, deadline=None)
@given(worlds(), policies)
def test_nothing_launched_current_shared_or_in_doubt_is_ever_doomed(world, policy):
    doomed = {j.ami for j in decide(world, policy).doomed}
    proven = {c.ami for c in world.candidates
              if c.registry == world.registry and c.ami in world.recorded}
    assert doomed <= proven
    assert not doomed & set(world.used)
    assert not doomed & set(world.current)
    assert not doomed & set(world.shared)
    assert not {c.ami for c in world.candidates if c.region in world.doubts} & doomed


@settings(max_examples=300, deadline=None)
@given(worlds(), policies)
def test_a_doomed_ami_is_no_kept_amis_parent_and_at_most_max_go_oldest_first(world, policy):
    judged = decide(world, policy)
    doomed = [j.candidate for j in judged.doomed]
    kept = {j.ami for j in judged.judgements if j.keep}
    assert not {c.parent for c in world.candidates if c.ami in kept} & {c.ami for c in doomed}
    assert len(doomed) <= policy.most
    assert doomed == sorted(doomed, key=lambda c: c.created)
    unkept = [j.candidate for j in judged.judgements if not j.keep]
    assert doomed == sorted(unkept, key=lambda c: c.created)[:policy.most]


@settings(max_examples=300, deadline=None)
@given(worlds(), policies)
def test_the_newest_k_of_a_held_image_and_anything_young_stay(world, policy):
    judged = decide(world, policy)
    for j in judged.judgements:
        c = j.candidate
        if c.ami in world.revoked:
            continue
        if (NOW - c.created).total_seconds() < policy.days * 86400:
            assert j.keep, c
        mine = lambda o: o.registry == OURS and o.ami in world.recorded       # noqa: E731
        peers = sorted((o for o in world.candidates if (o.image, o.region) == (c.image, c.region)
                        and o.ami not in world.revoked and mine(o)),
                       key=lambda o: o.created, reverse=True)
        if c.image in world.held and c in peers[:policy.keep]:
            assert f"among the newest {policy.keep} of {c.image}" in j.keep
