"""Revocation on the fakes: it follows the tree from whichever region's copy
is named, a revocation object counts only for the AMI of its own key, a bad
object under digests/ or revocations/ stops nothing, and a build whose
parent is revoked while it runs publishes nothing."""

from __future__ import annotations

import json
import threading

import pytest

from support.fakes import FakeTree, build_all
from support.project import IMAGES
from tasks.core.errors import AmiError


def two_region_base(tree: FakeTree) -> None:
    graph = tree.path / "amis.yaml"
    graph.write_text(graph.read_text().replace(
        "  base:\n    parent: centos\n", "  base:\n    parent: centos\n"
        "    regions: [eu-west-1, us-east-1]\n"))
    tree.packer.regions = {**tree.packer.regions, "base": ("us-east-1",)}


def current(tree: FakeTree, image: str) -> dict:
    return json.loads(tree.store.objects[f"channels/main/{image}.json"])


def revoked(tree: FakeTree) -> set[str]:
    return {k[len("revocations/"):-len(".json")] for k in tree.store.objects
            if k.startswith("revocations/")}


def test_revoking_a_parents_copy_in_a_second_region_revokes_everything_built_on_it(tree):
    two_region_base(tree)
    build_all(tree.run()[0])
    copy = current(tree, "base")["amis"]["us-east-1"]
    app, out = tree.run()
    app.revoker.revoke(copy, "", "CVE-1", undo=False, disable=False)
    everything = {a for image in IMAGES for a in current(tree, image)["amis"].values()}
    assert revoked(tree) == everything, out.getvalue()


def test_a_revocation_counts_only_for_the_ami_of_its_own_key(tree):
    build_all(tree.run()[0])
    a, b = current(tree, "web")["amis"]["eu-west-1"], current(tree, "worker")["amis"]["eu-west-1"]
    tree.store.objects[f"revocations/{a}.json"] = json.dumps({"ami": b, "reason": "x"}).encode()
    app, _ = tree.run()
    notes = app.registry.revoked()
    assert set(notes) == {a} and "it names" in notes[a]["reason"]
    assert app.lookup.decision().verdicts["worker"].action == "keep"
    with pytest.raises(AmiError, match=rf"revoke --undo: {b} is not revoked"):
        app.revoker.revoke(b, "", "", undo=True, disable=False)
    app.revoker.revoke(a, "", "", undo=True, disable=False)
    assert revoked(tree) == set()


@pytest.mark.parametrize("body", [b"[]", b"not json", b'"ami-x"'])
def test_a_malformed_revocation_revokes_its_keys_ami_and_stops_no_command(tree, body):
    build_all(tree.run()[0])
    web = current(tree, "web")["amis"]["eu-west-1"]
    tree.store.objects[f"revocations/{web}.json"] = body
    tree.store.objects["revocations/notes.txt"] = b"a note someone left"
    planned = tree.doit("plan")
    assert planned.returncode == 0 and "Traceback" not in planned.stdout + planned.stderr
    assert "is not a revocation this tool writes" in planned.stdout, planned.stdout
    collected = tree.doit("gc")
    assert collected.returncode == 0, collected.stdout + collected.stderr


def test_a_bad_digest_record_does_not_stop_a_revocation(tree):
    build_all(tree.run()[0])
    tree.store.objects["digests/web/" + "0" * 64 + ".json"] = b"{broken"
    app, out = tree.run()
    app.revoker.revoke("", "base", "CVE-1", undo=False, disable=False)
    assert len(revoked(tree)) == 6                          # base, its 4 children, web's copy
    assert "skipped s3://memory/digests/web/" in out.getvalue()


def test_a_build_whose_parent_is_revoked_while_it_runs_publishes_nothing(tree):
    build_all(tree.run()[0])
    tree.append("ansible/roles/web_app/defaults/main.yml", "\nweb_changed: 1\n")
    before = current(tree, "web")
    base = current(tree, "base")["amis"]["eu-west-1"]
    gate = tree.packer.hold["web"] = threading.Event()
    app, out = tree.run()
    app.builder.pull()
    app.builder.resolve_source()
    app.builder.bring_up_to_date("base")
    failure: list[BaseException] = []

    def build() -> None:
        try:
            app.builder.bring_up_to_date("web")
        except AmiError as err:
            failure.append(err)
    worker = threading.Thread(target=build)
    worker.start()
    assert tree.packer.started["web"].wait(10)
    other, _ = tree.run()
    other.revoker.revoke(base, "", "CVE-2", undo=False, disable=False)
    gate.set()
    worker.join(30)
    assert failure and f"its parent base {base} was revoked by" in str(failure[0])
    assert current(tree, "web") == before
    made = tree.packer.builds[-1].amis["eu-west-1"]
    assert tree.ec2.ami("eu-west-1", made) is None           # what it made is removed


def test_a_revoked_ami_is_never_promoted(tree):
    feature = {"AMI_CHANNEL": "feature"}
    build_all(tree.run(feature)[0])
    ami = json.loads(tree.store.objects["channels/feature/web.json"])["amis"]["us-east-1"]
    app, _ = tree.run()
    app.revoker.revoke(ami, "", "CVE-2", undo=False, disable=False)
    before = dict(tree.store.objects)
    app, _ = tree.run()
    with pytest.raises(AmiError, match=r"web in channel feature is ami-\w+, and ami-\w+ "
                                       r"\([\w-]+\) was revoked by .*: CVE-2: rebuild it there "
                                       "before promoting"):
        app.promoter.promote("web", "feature", "main")
    assert tree.store.objects == before
