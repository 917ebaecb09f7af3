"""What ``ami:<name>`` does, in process: keep, reuse or build with the
scripted Packer, and publish."""

from __future__ import annotations

import json
import re

import pytest

from support.inproc import Tree, build_all
from tasks.adapters.fakes import MemoryStore
from tasks.core.errors import AmiError
from tasks.ops import build
from tasks.ops.build import backoff


def test_backoff_grows_and_is_capped():
    for attempt in range(5):
        delay = backoff(attempt, 10)
        assert 10 * 2 ** attempt * 0.5 <= delay <= min(600, 10 * 2 ** attempt)
    assert backoff(20, 10) <= 600


@pytest.fixture
def memory(tree) -> Tree:
    """The example tree with its records in a MemoryStore (EC2: the emulator)."""
    tree.store = MemoryStore()
    return tree


def test_every_image_is_built_on_its_parent_and_published(memory):
    run, out = memory.run()
    build_all(run)
    objects = memory.store.objects
    base = json.loads(objects["channels/main/base.json"])
    web = json.loads(objects["channels/main/web.json"])
    assert web["parent"] == {"image": "base", "ami": base["amis"]["eu-west-1"]}
    assert objects[f"digests/web/{web['digest']}.json"] == objects["channels/main/web.json"]
    assert set(web["amis"]) == {"eu-west-1", "us-east-1"}
    assert web["inputs"] == run.checkout.manifest("web")
    built = {b.image: b for b in memory.packer.builds}
    assert built["web"].variables["source_ami"] == base["amis"]["eu-west-1"]
    assert run.outcomes.get("web").action == "built"
    assert "[centos] resolved to ami-bb9a6bc2 (pinned)" in out.getvalue()


def test_unchanged_inputs_are_kept_and_a_revert_reuses_by_digest(memory):
    run, _ = memory.run()
    build_all(run)
    first = json.loads(memory.store.objects["channels/main/worker.json"])
    again, out = memory.run()
    build_all(again)
    assert len(memory.packer.builds) == 5 and again.outcomes.get("worker").action == "up to date"
    assert again.outcomes.get("worker").ami == first['amis']['eu-west-1']
    assert "[worker]" not in out.getvalue()             # an image kept says nothing
    role = "ansible/roles/worker_app/defaults/main.yml"
    original = (memory.path / role).read_text()
    memory.append(role, "\nworker_extra: 1\n")
    build_all(memory.run()[0])
    assert memory.packer_builds()[-1] == "worker"
    memory.write(role, original)
    reverted, out = memory.run()
    build_all(reverted)
    assert len(memory.packer.builds) == 6                       # no build for the revert
    assert f"[worker] reused {first['amis']['eu-west-1']} by digest" in out.getvalue()
    assert json.loads(memory.store.objects["channels/main/worker.json"]) == first


def test_a_failed_build_publishes_nothing_and_says_where_its_log_is(memory):
    run, _ = memory.run()
    build.pull(run)
    build.resolve_source(run)
    memory.packer.fail["base"] = "UnauthorizedOperation: not allowed"
    before = dict(memory.store.objects)
    with pytest.raises(AmiError, match=r"image base: Packer exited 1: UnauthorizedOperation: "
                                       r"not allowed; nothing published, the previous AMI stays "
                                       r"current; log: .*/\.amis/logs/base-\d+T\d+Z\.log"):
        build.bring_up_to_date(run, "base")
    assert memory.store.objects == before


def test_an_image_whose_parent_has_no_ami_says_which(memory):
    run, _ = memory.run()
    build.pull(run)
    build.resolve_source(run)
    with pytest.raises(AmiError, match=r"image web: parent base has no AMI: build it first "
                                       r"\(doit ami:base\)"):
        build.bring_up_to_date(run, "web")


def test_the_summary_names_each_image_and_what_happened(memory):
    run, _ = memory.run()
    build_all(run)
    lines = build.summary(run).splitlines()
    assert lines[0].split() == ["image", "ami", "this", "run", "took"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["centos"][1:] == ["ami-bb9a6bc2", "resolved"]
    assert rows["web"][2] == "built" and re.fullmatch(r"\d+:\d\d", rows["web"][3])
