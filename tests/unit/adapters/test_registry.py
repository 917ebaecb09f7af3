"""The registry on a bucket (a MemoryStore here): publishing, channels, digests."""

from __future__ import annotations

from dataclasses import replace

from tasks.adapters.fakes import MemoryStore
from tasks.adapters.registry import Registry
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
