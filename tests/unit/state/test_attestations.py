"""With AMI_SIGNING_KEY set, an AMI is kept, reused or repaired only when its
signed provenance proves it is the build its record says; a KMS key's name
is never read as a path. On the fakes (FakeKms signs)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import MappingProxyType

import pytest

from support.fakes import FakeTree, build_all
from tasks.core.errors import AmiError

KEY = "alias/amis-sandbox"


@pytest.fixture
def signed(tree: FakeTree) -> FakeTree:
    tree.env["AMI_SIGNING_KEY"] = KEY
    build_all(tree.run()[0])
    tree.packer.builds.clear()
    return tree


def forge(tree: FakeTree, image: str = "web") -> tuple[str, dict]:
    """An attacker with the bucket and ec2:CreateTags: a new AMI given the
    image's tags (its Provenance tag too), its envelope copied under the new
    AMI's key, and the channel's record rewritten to name it."""
    record = json.loads(tree.store.objects[f"channels/main/{image}.json"])
    region, real = record["region"], record["amis"][record["region"]]
    original = tree.ec2.ami(region, real)
    fake = tree.ec2.add_ami(region, tags=dict(original.tags), name="forged").id
    envelope = tree.store.objects[f"digests/{image}/{record['digest']}.{real}.dsse.json"]
    tree.store.objects[f"digests/{image}/{record['digest']}.{fake}.dsse.json"] = envelope
    forged = {**record, "amis": {**record["amis"], region: fake}}
    tree.store.objects[f"channels/main/{image}.json"] = json.dumps(forged).encode()
    return fake, forged


def test_a_forged_ami_with_copied_tags_and_envelope_is_not_kept_nor_repaired(signed):
    tree = signed
    fake, forged = forge(tree)
    tree.store.objects["channels/main/web.txt"] = b"ami-00000000\n"      # and the .txt stale
    app, out = tree.run()
    app.builder.pull()
    assert tree.store.objects["channels/main/web.txt"] != f"{fake}\n".encode()   # not repaired
    verdict = app.lookup.decision().verdicts["web"]
    assert "is not proven by its signed provenance (the signed statement is of" in \
        app.lookup.facts.refused[fake]
    real = json.loads(tree.store.objects[f"digests/web/{forged['digest']}.json"])
    assert verdict.action == "reuse" and verdict.ami == real["amis"]["eu-west-1"], verdict
    app.builder.resolve_source()
    app.builder.bring_up_to_date("web")
    now = json.loads(tree.store.objects["channels/main/web.json"])
    assert now["amis"] == real["amis"] and tree.packer_builds() == []     # the genuine one


def test_an_unsigned_ami_is_rebuilt_once_a_key_is_set(tree):
    build_all(tree.run()[0])
    tree.packer.builds.clear()
    tree.env["AMI_SIGNING_KEY"] = KEY
    app, _ = tree.run()
    decision = app.lookup.decision()
    assert sorted(decision.builds()) == ["base", "build", "deploy", "web", "worker"]
    base = json.loads(tree.store.objects["channels/main/base.json"])["amis"]["eu-west-1"]
    assert "unsigned: it has no Provenance tag" in app.lookup.facts.refused[base]


def test_a_proven_ami_is_checked_once_per_key_and_envelope(signed):
    tree = signed
    statements = lambda: [c for c in tree.store.calls if c[1].endswith(".dsse.json")]  # noqa
    for _ in range(2):
        tree.store.calls.clear()
        app, _ = tree.run()
        assert not app.lookup.decision().builds()
    assert statements() == []                       # proven by the run before
    (tree.path / ".amis/attested.json").unlink()
    tree.store.calls.clear()
    app, _ = tree.run()
    assert not app.lookup.decision().builds()
    assert len(statements()) == 6                   # 5 images and web's copy: each checked
    (tree.path / ".amis/attested.json").write_text('{"another key": []}')
    tree.store.calls.clear()
    app, _ = tree.run()
    assert not app.lookup.decision().builds() and len(statements()) == 6


def test_a_file_at_the_kms_aliass_path_is_never_the_key(signed, tmp_path):
    """A branch that commits alias/amis-sandbox holding another public key
    does not make verify trust that key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    planted = tree_file = signed.path / KEY
    planted.parent.mkdir(parents=True)
    other = ec.generate_private_key(ec.SECP256R1())
    tree_file.write_bytes(other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    app, out = signed.run()
    app.verifier.verify("", "web", "", worktree=True)            # checked with the KMS key
    assert out.getvalue().count("signature ok") == 2
    assert ("public_key", KEY) in signed.kms.calls


@pytest.mark.parametrize("change, said", [
    ({"state": "disabled"}, "it is disabled in EC2"),
    ({"deprecated_at": datetime(2026, 1, 1, tzinfo=timezone.utc)}, "it is deprecated in EC2"),
])
def test_verify_fails_an_ami_ec2_disabled_or_deprecated_without_a_revocation(signed, change,
                                                                               said):
    record = json.loads(signed.store.objects["channels/main/base.json"])
    key = ("eu-west-1", record["amis"]["eu-west-1"])
    signed.ec2.images[key] = replace(signed.ec2.images[key], **change)
    app, _ = signed.run()
    with pytest.raises(AmiError, match=rf"verify: base {key[1]}: {said}"):
        app.verifier.verify("", "web", "", worktree=True)


def test_verify_fails_an_ami_that_no_longer_exists(signed):
    record = json.loads(signed.store.objects["channels/main/web.json"])
    del signed.ec2.images["eu-west-1", record["amis"]["eu-west-1"]]
    app, _ = signed.run()
    with pytest.raises(AmiError, match=r"verify: web ami-\w+: no such AMI in eu-west-1"):
        app.verifier.verify("", "web", "", worktree=True)


def test_a_key_that_cannot_be_read_is_the_runs_one_line_not_each_amis(signed):
    app, _ = signed.run({"AMI_SIGNING_KEY": "file:/dev/zero"})
    with pytest.raises(AmiError) as info:
        app.lookup.decision()
    assert str(info.value) == "AMI_SIGNING_KEY=file:/dev/zero: /dev/zero is not a key file " \
        "(a regular file under 64 KB): name the PEM key file"
