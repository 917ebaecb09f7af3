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
    assert re.search(r"^web\s+build\s.*parent base builds first; AMI ami-\w+ \([\w-]+\) was "
                     r"revoked by .*: built on ami-\w+: CVE-2026-0001 in openssl$", plan, re.M), plan
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
    restored = [l for l in out.splitlines() if l.startswith("restored ")]
    assert restored[0] == f"restored {web}" and len(restored) == 2, out   # then its copy
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
    assert failed(tree.doit("revoke", "-a", "nope", "-r", "x")).count(
        "revoke --ami=nope: not an AMI id (ami- and 8 to 17 hex digits)") == 1
    assert "say why with --reason" in failed(tree.doit("revoke", "-i", "base", "-r", "  "))
    assert "ERROR: revoke: say which AMI: --ami ami-… or --image <image>" in failed(
        tree.doit("revoke", "-r", "x"))
    assert "revoke --image=bsae: no such image in amis.yaml: did you mean base?" in failed(
        tree.doit("revoke", "-i", "bsae", "-r", "x"))
    assert "AMI_BUCKET is not set" in failed(tree.doit("verify", "-i", "web",
                                                       env={"AMI_BUCKET": None, "AMI_SANDBOX": None}))


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


DEPRECATED = (b'<EnableImageDeprecationResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">'
              b'<requestId>r</requestId><return>true</return></EnableImageDeprecationResponse>')
UNDEPRECATED = DEPRECATED.replace(b"EnableImageDeprecation", b"DisableImageDeprecation")
REFUSED = (b"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>You are not "
           b"authorized to perform this operation.</Message></Error></Errors>"
           b"<RequestID>r</RequestID></Response>")


def revocation(tree, ami: str) -> dict:
    return json.loads(tree.objects()[f"revocations/{ami}.json"])


def test_the_emulator_lacking_deprecation_is_said_once_and_the_revocation_stands(built_tree):
    tree = built_tree
    base = current(tree, "base")["amis"][REGION]
    out = ok(tree.doit("revoke", "-i", "base", "-r", "compromised")).stdout
    lines = [l for l in out.splitlines() if "EnableImageDeprecation" in l]
    assert len(lines) == 1 and re.fullmatch(
        r"deprecation not set in EC2: http://127\.0\.0\.1:\d+ has no EnableImageDeprecation "
        r"\(an emulator\); the registry, which plan, amis, verify and gc go by, is updated",
        lines[0]), out
    note = revocation(tree, base)
    assert note["caller"].startswith("arn:aws:") and note["reason"] == "compromised", note
    undo = ok(tree.doit("revoke", "-i", "base", "--undo")).stdout
    assert "deprecation not ended in EC2: " in undo and "has no DisableImageDeprecation" in undo


def test_every_revoked_ami_is_deprecated_and_undo_ends_it(built_tree, proxy):
    from datetime import datetime, timedelta, timezone
    tree = built_tree
    tree.env["AWS_ENDPOINT_URL"] = proxy.url
    deprecations = proxy.answer(lambda r: r.action == "EnableImageDeprecation", DEPRECATED)
    ended = proxy.answer(lambda r: r.action == "DisableImageDeprecation", UNDEPRECATED)
    web = current(tree, "web")
    before = datetime.now(timezone.utc)
    out = ok(tree.doit("revoke", "-i", "web", "-r", "leaked key", "--disable")).stdout
    assert "deprecation not set" not in out, out
    sent = [r for r in proxy.seen if r.action == "EnableImageDeprecation"]
    assert deprecations.hits == 2 and sorted(r.form("ImageId") for r in sent) == \
        sorted(web["amis"].values())
    for request in sent:
        at = datetime.fromisoformat(request.form("DeprecateAt").replace("Z", "+00:00"))
        assert at.second == 0 and before < at <= before + timedelta(minutes=3), at
    for region, ami in web["amis"].items():
        state = tree.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]["State"]
        assert state == "disabled"
    ok(tree.doit("revoke", "-i", "web", "--undo"))
    assert ended.hits == 2
    for region, ami in web["amis"].items():                     # --undo enables them again
        state = tree.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]["State"]
        assert state == "available"
    assert re.findall(r"^(\w+)\s+build\s", ok(tree.doit("plan")).stdout, re.M) == []


def test_a_refused_deprecation_fails_after_recording_and_a_rerun_retries(built_tree, proxy):
    tree = built_tree
    tree.env["AWS_ENDPOINT_URL"] = proxy.url
    refused = proxy.answer(lambda r: r.action == "EnableImageDeprecation", REFUSED, status=403)
    web = current(tree, "web")["amis"]
    result = tree.doit("revoke", "-i", "web", "-r", "leaked key")
    out = failed(result)
    assert refused.hits == 2 and re.search(
        r"^ERROR: revoke: the registry is updated, but EC2 refused: deprecating ami-\w+ "
        r"\([\w-]+\): UnauthorizedOperation: You are not authorized to perform this operation\.: "
        r"grant the build role access \(docs/security\.md, IAM policies\) \(and 1 more\); run the "
        r"same command again to retry$", out, re.M), out
    assert all(f"revocations/{ami}.json" in tree.objects() for ami in web.values())
    proxy.clear()
    accepted = proxy.answer(lambda r: r.action == "EnableImageDeprecation", DEPRECATED)
    again = ok(tree.doit("revoke", "-i", "web", "-r", "leaked key")).stdout
    assert accepted.hits == 2 and again.count("was already revoked by") == 2, again


def test_disabling_on_a_second_revoke_is_undone_too(built_tree):
    tree = built_tree
    web = current(tree, "web")
    ok(tree.doit("revoke", "-i", "web", "-r", "leaked key"))
    again = ok(tree.doit("revoke", "-i", "web", "-r", "leaked key", "--disable")).stdout
    assert again.count("was already revoked by") == 2, again
    ok(tree.doit("revoke", "-i", "web", "--undo"))
    for region, ami in web["amis"].items():
        state = tree.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]["State"]
        assert state == "available", (region, state)


def test_a_revoke_whose_reader_leaves_still_revokes_everything(built_tree):
    """`doit revoke -i base -r why | head -2` once stopped after 2 of 7 AMIs."""
    from tasks.adapters.console import Console

    class LeftReader:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass
    tree = built_tree
    amis = [a for image in IMAGES for a in current(tree, image)["amis"].values()]
    app, _ = tree.run()
    app.console = Console(out=LeftReader())
    app.revoker.revoke("", "base", "compromised", undo=False, disable=False)
    assert all(f"revocations/{ami}.json" in tree.objects() for ami in amis)


def test_a_revoked_source_stops_every_build_and_fails_verify(tree, aws):
    """Nothing is built on a revoked source, and a chain ending there fails."""
    key = tree.client("kms").create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")[
        "KeyMetadata"]["KeyId"]
    tree.env["AMI_SIGNING_KEY"] = key
    ok(tree.doit("amis"))
    ok(tree.doit("revoke", "-a", "ami-bb9a6bc2", "-r", "a bad upstream image"))
    tree.reset_count()
    for command in ("plan", "amis"):
        out = failed(tree.doit(command))
        assert re.search(r"source centos: ami-bb9a6bc2 \(pinned\) was revoked by .* at .*: a bad "
                         r"upstream image: point amis.yaml's source at another image", out), out
    assert tree.packer_builds() == []
    assert "revoked by" in failed(tree.doit("verify", "-i", "web"))   # web went with it


def test_verify_checks_the_source_at_the_end_of_the_chain(tree, aws):
    """A revocation of the source alone (everything built on it restored)."""
    tree.env["AMI_SIGNING_KEY"] = tree.client("kms").create_key(
        KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    ok(tree.doit("amis"))
    ok(tree.doit("revoke", "-a", "ami-bb9a6bc2", "-r", "a bad upstream image"))
    for key in [k for k in tree.objects() if k.startswith("revocations/")]:
        if not key.endswith("ami-bb9a6bc2.json"):
            tree.client("s3").delete_object(Bucket="test-amis", Key=key)
    out = failed(tree.doit("verify", "-i", "web"))
    assert out.count("signature ok") == 2 and re.search(
        r"verify: centos ami-bb9a6bc2: revoked by .*: a bad upstream image", out), out


def test_a_child_revoked_on_its_own_stays_revoked_when_its_parent_is_restored(built_tree):
    tree = built_tree
    web = current(tree, "web")["amis"][REGION]
    ok(tree.doit("revoke", "-i", "base", "-r", "CVE in openssl"))
    out = ok(tree.doit("revoke", "-i", "web", "-r", "web backdoor")).stdout
    assert f"revoked {web} (web, {REGION}) on its own (it was revoked with ami-" in out, out
    restored = ok(tree.doit("revoke", "-i", "base", "--undo")).stdout
    assert web not in restored, restored
    assert revocation(tree, web)["reason"] == "web backdoor"
    assert re.findall(r"^(\w+)\s+build\s", ok(tree.doit("plan")).stdout, re.M) == ["web"]


def test_an_ami_deprecated_in_ec2_without_a_revocation_is_not_kept(built_tree, proxy):
    """A revocation deleted from the bucket leaves EC2's deprecation behind:
    the AMI is rebuilt, and plan says why. (moto cannot deprecate: the proxy
    adds the DeprecationTime EC2 would report.)"""
    tree = built_tree
    web = current(tree, "web")["amis"][REGION]
    tree.env["AWS_ENDPOINT_URL"] = proxy.url
    mark = f"<imageId>{web}</imageId>".encode()
    proxy.rewrite(lambda r: r.action == "DescribeImages", lambda body: body.replace(
        mark, mark + b"<deprecationTime>2026-01-01T00:00:00.000Z</deprecationTime>"))
    plan = ok(tree.doit("plan")).stdout
    assert re.search(rf"^web\s+build\s.*AMI {web} \({REGION}\) is deprecated in EC2 since "
                     r"2026-01-01T00:00:00\+00:00, and the registry has no revocation of it$",
                     plan, re.M), plan
    ok(tree.doit("revoke", "-a", web, "-r", "leaked key"))        # a revocation wins the why
    assert re.search(rf"^web\s+build\s.*AMI {web} \({REGION}\) was revoked by .*: leaked key$",
                     ok(tree.doit("plan")).stdout, re.M)
