"""doit revoke, in process against the emulator: a revoked AMI and
everything built on it rebuild (none on the old AMI, nothing reused by
digest), a revoked leaf rebuilds alone, --undo restores, verify refuses a
revoked AMI, and gc deletes a revoked AMI once nothing uses it."""

from __future__ import annotations

import json
import re

from support.project import IMAGES, REGION, failed, ok


def current(tree, image: str) -> dict:
    return json.loads(tree.record(image).read_text())


def test_revoking_base_rebuilds_everything_built_on_it(built_tree):
    tree = built_tree
    old_base = current(tree, "base")["amis"][REGION]
    old = {image: current(tree, image)["amis"][REGION] for image in IMAGES}
    out = ok(tree.doit("revoke", "-i", "base", "--reason", "CVE-2026-0001 in openssl")).stdout
    assert f"revoked {old_base} (base, {REGION})" in out
    assert f"revoked {old['web']} (web, {REGION}): built on {old_base}" in out
    plan = ok(tree.doit("plan")).stdout
    for image in IMAGES:
        row = next(l for l in plan.splitlines() if l.startswith(f"{image} "))
        assert re.search(r"\sbuild\s", row), plan
    assert re.search(r"^base\s+build.*was revoked by .*: CVE-2026-0001 in openssl$", plan, re.M)
    ok(tree.doit("amis"))
    assert sorted(tree.packer_builds()) == sorted(IMAGES)        # nothing reused by digest
    new_base = current(tree, "base")["amis"][REGION]
    assert new_base != old_base
    for image in IMAGES:
        record = current(tree, image)
        assert record["amis"][REGION] != old[image]
        if image != "base":
            assert record["parent"]["ami"] == new_base              # none on the old AMI
    tree.reset_count()
    ok(tree.doit("amis"))
    assert tree.packer_builds() == []
    # gc: the revoked AMIs go though young and among the newest, nothing uses them
    gc = ok(tree.doit("gc", "--keep", "3", "--days", "30")).stdout
    assert re.search(rf"^base\s+{REGION}\s+{old_base}\s.*would delete", gc, re.M), gc


def test_revoking_a_leaf_rebuilds_only_it_and_undo_restores(built_tree):
    tree = built_tree
    web = current(tree, "web")["amis"][REGION]
    ok(tree.doit("revoke", "-a", web, "--reason", "bad nginx config"))
    plan = ok(tree.doit("plan")).stdout
    builds = re.findall(r"^(\w+)\s+build\s", plan, re.M)
    assert builds == ["web"], plan
    out = ok(tree.doit("revoke", "-a", web, "--undo")).stdout
    assert f"restored {web}" in out
    assert re.findall(r"^(\w+)\s+build\s", ok(tree.doit("plan")).stdout, re.M) == []
    log = [k for k in tree.objects() if k.startswith("revocations-log/")]
    assert len(log) == 4                    # web and its us-east-1 copy: revoked, then restored
    ok(tree.doit("revoke", "-a", web, "--reason", "bad nginx config"))
    ok(tree.doit("amis"))
    assert tree.packer_builds() == ["web"]


def test_revoke_needs_a_reason_and_a_known_ami(built_tree):
    tree = built_tree
    assert "say why with --reason" in failed(tree.doit("revoke", "-i", "base"))
    assert "is not revoked" in failed(tree.doit("revoke", "-i", "base", "--undo"))
    assert failed(tree.doit("revoke", "-a", "nope", "-r", "x")).count("give an AMI id") == 1


def test_verify_refuses_a_revoked_ami(tree, aws):
    key = tree.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")[
        "KeyMetadata"]["KeyId"]
    tree.env["AMI_SIGNING_KEY"] = key
    ok(tree.doit("amis"))
    ok(tree.doit("verify", "-i", "web"))
    ok(tree.doit("revoke", "-i", "base", "-r", "compromised"))
    out = failed(tree.doit("verify", "-i", "web"))
    assert re.search(r"verify: web ami-\w+: revoked by .* at .*: built on ami-\w+: compromised",
                     out), out


def test_disable_also_disables_the_amis_in_ec2(built_tree):
    tree = built_tree
    web = current(tree, "web")
    ok(tree.doit("revoke", "-i", "web", "-r", "leaked key", "--disable"))
    for region, ami in web["amis"].items():
        image = tree.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]
        assert image["State"] == "disabled", image
