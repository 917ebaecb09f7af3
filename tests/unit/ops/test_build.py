"""What ``ami:<name>`` does, in process on the fakes: keep, reuse or build
with the scripted Packer, and publish."""

from __future__ import annotations

import json
import re

import pytest

from support.fakes import build_all
from tasks.core.errors import AmiError
from tasks.core.outcome import Outcome
from tasks.ops.build import backoff


def test_backoff_grows_and_is_capped():
    for attempt in range(5):
        delay = backoff(attempt, 10)
        assert 10 * 2 ** attempt * 0.5 <= delay <= min(600, 10 * 2 ** attempt)
    assert backoff(20, 10) <= 600


def test_every_image_is_built_on_its_parent_and_published(tree):
    app, out = tree.run()
    build_all(app)
    objects = tree.store.objects
    base = json.loads(objects["channels/main/base.json"])
    web = json.loads(objects["channels/main/web.json"])
    assert web["parent"] == {"image": "base", "ami": base["amis"]["eu-west-1"]}
    assert objects[f"digests/web/{web['digest']}.json"] == objects["channels/main/web.json"]
    assert set(web["amis"]) == {"eu-west-1", "us-east-1"}
    assert web["inputs"] == app.checkout.manifest("web")
    built = {b.image: b for b in tree.packer.builds}
    assert built["web"].variables["source_ami"] == base["amis"]["eu-west-1"]
    assert app.reports.get("web").outcome is Outcome.BUILT
    assert tree.ec2.ami("us-east-1", web["amis"]["us-east-1"]).tags["Image"] == "web"
    assert "[centos] resolved to ami-bb9a6bc2 (pinned)" in out.getvalue()


def test_unchanged_inputs_are_kept_and_a_revert_reuses_by_digest(tree):
    app, _ = tree.run()
    build_all(app)
    first = json.loads(tree.store.objects["channels/main/worker.json"])
    again, out = tree.run()
    build_all(again)
    assert len(tree.packer.builds) == 5
    assert again.reports.get("worker").outcome is Outcome.UP_TO_DATE
    assert again.reports.get("worker").ami == first['amis']['eu-west-1']
    assert "[worker]" not in out.getvalue()             # an image kept says nothing
    role = "ansible/roles/worker_app/defaults/main.yml"
    original = (tree.path / role).read_text()
    tree.append(role, "\nworker_extra: 1\n")
    build_all(tree.run()[0])
    assert tree.packer_builds()[-1] == "worker"
    tree.write(role, original)
    reverted, out = tree.run()
    build_all(reverted)
    assert len(tree.packer.builds) == 6                       # no build for the revert
    assert f"[worker] reused {first['amis']['eu-west-1']} by digest" in out.getvalue()
    assert json.loads(tree.store.objects["channels/main/worker.json"]) == first


def test_a_failed_build_publishes_nothing_and_says_where_its_log_is(tree):
    app, _ = tree.run()
    app.builder.pull()
    app.builder.resolve_source()
    tree.packer.fail["base"] = "UnauthorizedOperation: not allowed"
    before = dict(tree.store.objects)
    with pytest.raises(AmiError, match=r"image base: Packer exited 1: UnauthorizedOperation: "
                                       r"not allowed; nothing published, the previous AMI stays "
                                       r"current; log: .*/\.amis/logs/base-\d+T\d+Z\.log"):
        app.builder.bring_up_to_date("base")
    assert tree.store.objects == before


def test_an_image_whose_parent_has_no_ami_says_which(tree):
    app, _ = tree.run()
    app.builder.pull()
    app.builder.resolve_source()
    with pytest.raises(AmiError, match=r"image web: parent base has no AMI: build it first "
                                       r"\(doit ami:base\)"):
        app.builder.bring_up_to_date("web")


def test_the_summary_names_each_image_and_what_happened(tree):
    app, _ = tree.run()
    build_all(app)
    lines = app.builder.summary().splitlines()
    assert lines[0].split() == ["image", "ami", "this", "run", "took"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert rows["centos"][1:] == ["ami-bb9a6bc2", "resolved"]
    assert rows["web"][2] == "built" and re.fullmatch(r"\d+:\d\d", rows["web"][3])
