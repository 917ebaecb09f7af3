"""The registry on a bucket (a MemoryStore here): publishing, channels, digests."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from tasks.adapters.fakes import FakeSsm, MemoryStore
from tasks.adapters.registry import Registry
from tasks.core.errors import AmiError
from tasks.core.records import Record



def test_a_newer_current_record_is_not_overwritten_by_an_older_build():
    """Agent A built web; agent B's slower, earlier-started build of other
    inputs finishes later: its publish must not replace A's newer record."""
    store = MemoryStore()
    registry = Registry(store)
    newer = Record(image="web", region="eu-west-1", amis={"eu-west-1": "ami-0000000a"},
                   digest="a" * 64, build_started="2026-01-02T00:00:00+00:00")
    registry.publish(newer, "main", new_build=True)
    older = replace(newer, digest="f" * 64, build_started="2000-01-01T00:00:00+00:00",
                    amis={"eu-west-1": "ami-0000000f"})
    original = registry.get
    calls = {"n": 0}

    def stale_read(key):
        # The first read returns what B saw before A published: an older pointer.
        calls["n"] += 1
        found = original(key)
        if calls["n"] == 1 and key.endswith("channels/main/web.json") and found:
            return found[0], '"0000000000000000000000000000000f"'
        return found
    registry.get = stale_read
    result = registry.publish(older, "main", new_build=True)
    assert result.digest == newer.digest
    assert store.objects["channels/main/web.json"] == newer.body()
    assert f"digests/web/{'f' * 64}.json" in store.objects      # B's build is still kept


def record(image: str = "web", ami: str = "ami-0000000a", digest: str = "a" * 64,
           started: str = "2026-01-02T00:00:00+00:00") -> Record:
    return Record(image=image, region="eu-west-1", amis={"eu-west-1": ami}, digest=digest,
                  build_started=started)


def test_publishing_marks_the_ami_built_then_writes_the_digest_copy_the_pointer_and_its_id():
    store = MemoryStore()
    written: list[str] = []
    store.before.append(lambda op, key: written.append(key) if op == "put" else None)
    ssm = FakeSsm()
    registry = Registry(store, "teams/x/", "/amis", ssm)
    registry.publish(record(), "main", new_build=True)
    assert written == ["teams/x/built/ami-0000000a.json", f"teams/x/digests/web/{'a' * 64}.json",
                       "teams/x/channels/main/web.json", "teams/x/channels/main/web.txt"]
    assert store.objects["teams/x/channels/main/web.txt"] == b"ami-0000000a\n"
    assert ssm.params == {("eu-west-1", "/amis/main/web"): ["ami-0000000a"]}
    source = Record(image="centos", region="eu-west-1", amis={"eu-west-1": "ami-bb9a6bc2"},
                    digest="0" * 64, source={"ami": "ami-bb9a6bc2", "resolved": "pinned"})
    registry.publish(source, "main", new_build=True)
    assert registry.built() == {"ami-0000000a"}                  # the source is not ours


def test_a_pull_lists_once_and_fetches_only_what_differs_from_the_local_copies():
    store = MemoryStore()
    registry = Registry(store)
    for image in ("base", "web"):
        registry.publish(record(image), "main", new_build=True)
    store.calls.clear()
    local = {"base": store.objects["channels/main/base.json"], "web": b"{}"}
    pulled = registry.pull("main", ["centos", "base", "web"], local)
    assert pulled.status == {"centos": "absent", "base": "same", "web": "updated"}
    assert [c for c in store.calls if c[0] in ("listing", "get")] == [
        ("listing", "channels/main/"), ("get", "channels/main/web.json")]
    assert pulled.records["web"] == record("web") and pulled.txt_stale == []
    store.objects["channels/main/web.txt"] = b"ami-stale\n"
    assert registry.pull("main", ["web"], {}).txt_stale == ["web"]


def test_a_channel_still_to_be_worked_out_is_listed_once_known():
    """The lookup hands the pull git's answer to come: the channel it names
    is the one listed and read."""
    store = MemoryStore()
    registry = Registry(store)
    registry.publish(record("web"), "feature-x", new_build=True)
    asked = []
    pulled = registry.pull(lambda: asked.append(1) or "feature-x", ["web"], {})
    assert pulled.status == {"web": "new"} and pulled.records["web"] == record("web")
    assert ("listing", "channels/feature-x/") in store.calls and asked


def test_a_record_under_another_images_key_stops_the_pull():
    store = MemoryStore()
    store.objects["channels/main/web.json"] = record("worker").body()
    with pytest.raises(AmiError, match="channels/main/web.json: holds the record of 'worker', "
                                       "not 'web'"):
        Registry(store).pull("main", ["web"], {})


def test_records_by_digest_are_found_and_others_are_none():
    store = MemoryStore()
    registry = Registry(store)
    registry.publish(record(), "main", new_build=True)
    found = registry.by_digest([("web", "a" * 64), ("web", "b" * 64)])
    assert found == {("web", "a" * 64): record(), ("web", "b" * 64): None}


def test_a_promotion_moves_the_pointer_and_keeps_a_note():
    store = MemoryStore()
    registry = Registry(store)
    registry.publish(record(ami="ami-0000000b", digest="b" * 64), "candidate", new_build=True)
    registry.publish(record(), "main", new_build=True)
    promoted, replaced, current = registry.promote("web", "candidate", "main", "alice",
                                                   {"ami-0000000b"})
    assert (promoted.ami, replaced.ami, current.ami) == ("ami-0000000b", "ami-0000000a",
                                                          "ami-0000000b")
    now = Record.from_json(store.objects["channels/main/web.json"], "main")
    assert now.promotion.from_channel == "candidate" and now.promotion.replaced_digest == "a" * 64
    notes = [k for k in store.objects if k.startswith("promotions/web/")]
    assert len(notes) == 1 and b'"by": "alice"' in store.objects[notes[0]]


def test_a_promotion_from_nothing_or_to_a_gone_ami_is_one_line():
    store = MemoryStore()
    registry = Registry(store)
    with pytest.raises(AmiError, match="channel nowhere has no record of web"):
        registry.promotion_plan("web", "nowhere", "main", set())
    registry.publish(record(), "candidate", new_build=True)
    with pytest.raises(AmiError, match="web in channel candidate is ami-0000000a, which no "
                                       "longer exists"):
        registry.promotion_plan("web", "candidate", "main", set())


def test_a_pull_names_what_the_channel_holds_beyond_the_graph():
    store = MemoryStore()
    registry = Registry(store, "teams/x/")
    for image in ("base", "old"):
        registry.publish(record(image), "main", new_build=True)
    registry.publish(record("other"), "feature", new_build=True)
    store.put("teams/x/channels/main/gone.txt", b"ami-0000000a\n", "text/plain")
    assert registry.pull("main", ["base"], {}).others == ["gone", "old"]
    assert registry.held() == {"main": {"base", "gone", "old"}, "feature": {"other"}}


def test_retiring_removes_the_parameter_the_id_then_the_record():
    store = MemoryStore()
    removed: list[str] = []
    store.before.append(lambda op, key: removed.append(key) if op == "delete" else None)
    ssm = FakeSsm()
    registry = Registry(store, "", "/amis", ssm)
    registry.publish(record("old"), "main", new_build=True)
    assert registry.retire("main", "old").ami == "ami-0000000a"
    assert ("delete", "eu-west-1", "/amis/main/old") in ssm.calls and not ssm.params
    assert removed == ["channels/main/old.txt", "channels/main/old.json"]
    assert registry.held() == {} and f"digests/old/{'a' * 64}.json" in store.objects


def test_a_retirement_cut_short_is_finished_by_the_next():
    store = MemoryStore()
    registry = Registry(store)
    registry.publish(record("old"), "main", new_build=True)

    def json_delete_fails(op: str, key: str) -> None:
        if op == "delete" and key.endswith(".json"):
            raise AmiError("deleting: InternalError")
    store.before.append(json_delete_fails)
    with pytest.raises(AmiError):
        registry.retire("main", "old")
    assert registry.held() == {"main": {"old"}}          # still found, so retired next time
    store.before.clear()
    registry.retire("main", "old")
    assert registry.held() == {}


def test_the_bucket_check_lists_the_revocations_once_and_later_reads_list_anew():
    store = MemoryStore()
    registry = Registry(store, prefix="p/")
    registry.revoke({"ami": "ami-0000000a", "by": "t", "at": "now", "reason": "x"})
    store.calls.clear()
    registry.pull("main", ["web"], {})
    assert list(registry.revoked()) == ["ami-0000000a"]
    assert [c for c in store.calls if c[0] in ("check", "listing")] == [
        ("check", "p/revocations/"), ("listing", "p/channels/main/")]
    registry.unrevoke("ami-0000000a", {"ami": "ami-0000000a", "undo": "true"})
    store.calls.clear()
    assert registry.revoked() == {}                # listed anew, not the check's old page
    assert store.calls == [("listing", "p/revocations/")]


def test_revocations_are_listed_when_the_check_could_not_hold_them():
    store = MemoryStore()
    registry = Registry(store)
    registry.revoke({"ami": "ami-0000000b", "by": "t", "at": "now", "reason": "x"})
    store.check = lambda listing="": None          # already checked, or more than a page
    registry.pull("main", ["web"], {})
    store.calls.clear()
    assert list(registry.revoked()) == ["ami-0000000b"]
    assert ("listing", "revocations/") in store.calls


def test_a_pull_on_a_bucket_the_check_makes_lists_the_channel_again():
    """The sandbox's bucket check creates the bucket; the channel's listing,
    asked at the same time, may have found it missing: it is asked again."""
    store = MemoryStore()
    made = threading.Event()

    def missing_until_made(operation, key):
        if operation == "listing" and not made.is_set():
            raise AmiError("listing s3://memory/channels/main/: NoSuchBucket")
        if operation == "check":
            made.set()
    store.before.append(missing_until_made)
    pulled = Registry(store).pull("main", ["web"], {})
    assert pulled.status == {"web": "absent"}
    assert [c for c in store.calls if c[0] == "listing"][-1] == ("listing", "channels/main/")


def test_a_missing_bucket_is_said_by_the_check_not_by_the_listing():
    store = MemoryStore()

    def no_bucket(operation, key):
        raise AmiError(f"{operation}: no bucket" if operation == "check"
                       else "listing: NoSuchBucket")
    store.before.append(no_bucket)
    with pytest.raises(AmiError, match="check: no bucket"):
        Registry(store).pull("main", ["web"], {})
