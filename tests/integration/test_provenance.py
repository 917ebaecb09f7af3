"""Signed provenance, in process against the emulator (its KMS signs): every
AMI built with AMI_SIGNING_KEY verifies back to the source, with our code
and with a second implementation (cryptography over DSSE's PAE, and the
in-toto library's own statement checks); each way to forge or break it
fails in one line."""

from __future__ import annotations

import base64
import json
import re

import pytest
from google.protobuf import json_format

from support.project import REGION, failed, ok


def kms_key(tree, spec: str = "ECC_NIST_P256") -> str:
    return tree.client("kms").create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")[
        "KeyMetadata"]["KeyId"]


def envelope_key(record: dict) -> str:
    return f"digests/{record['image']}/{record['digest']}.{record['amis'][REGION]}.dsse.json"


@pytest.fixture
def signed(tree, aws):
    key = kms_key(tree)
    tree.env["AMI_SIGNING_KEY"] = key
    ok(tree.doit("amis"))
    return tree, key


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_every_ami_verifies_back_to_the_source(tree, aws, spec):
    key = kms_key(tree, spec)
    tree.env["AMI_SIGNING_KEY"] = key
    built = ok(tree.doit("amis")).stdout
    assert f"signed the provenance of base, build, deploy, web, worker with {key}: doit verify " \
           "-i <image> checks one" in built, built
    out = ok(tree.doit("verify", "-i", "web")).stdout
    links = [l for l in out.splitlines() if "signature ok, subject ok" in l]
    assert [l.split()[0] for l in links] == ["web", "base"], out
    assert links[1].endswith("built on source centos ami-bb9a6bc2"), out
    web = json.loads(tree.record("web").read_text())
    for region, ami in web["amis"].items():
        tags = tree.client("ec2", region).describe_images(ImageIds=[ami])["Images"][0]["Tags"]
        assert {t["Key"]: t["Value"] for t in tags}["Provenance"] == web["provenance"]
    assert "unsigned" not in ok(tree.doit("plan")).stdout


def test_the_envelope_verifies_without_our_code(signed):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    tree, key = signed
    web = json.loads(tree.record("web").read_text())
    envelope = json.loads(tree.objects()[envelope_key(web)])
    payload = base64.b64decode(envelope["payload"])
    kind = envelope["payloadType"].encode()
    pae = b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)
    public = serialization.load_der_public_key(
        tree.client("kms").get_public_key(KeyId=key)["PublicKey"])
    public.verify(base64.b64decode(envelope["signatures"][0]["sig"]), pae,
                  ec.ECDSA(hashes.SHA256()))                     # raises if it does not
    statement = json.loads(payload)
    parsed = json_format.ParseDict(statement, statement_pb2.Statement())
    Statement.copy_from_pb(parsed).validate()
    json_format.ParseDict(statement["predicate"], provenance_pb2.Provenance())
    assert statement["subject"][0]["name"] == f"arn:aws:ec2:{REGION}::image/{web['amis'][REGION]}"
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    assert {"name": "repository", "digest": {"gitCommit": web["git"]["commit"]}}.items() <= \
        deps[0].items()
    base = json.loads(tree.record("base").read_text())
    assert deps[-1]["digest"] == {"sha256": base["provenance"]} and deps[-1]["name"] == "base"


def test_a_wrong_key_fails(signed, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    tree, _ = signed
    other = tmp_path / "other.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out = failed(tree.doit("verify", "-i", "web", "--key", str(other)))
    assert "the signature does not verify with key" in out, out


def test_a_tampered_statement_fails(signed):
    tree, _ = signed
    web = json.loads(tree.record("web").read_text())
    s3 = tree.client("s3")
    body = json.loads(tree.objects()[envelope_key(web)])
    body["payload"] = base64.b64encode(base64.b64decode(body["payload"]).replace(
        b'"channel":"main"', b'"channel":"prod"')).decode()
    s3.put_object(Bucket="test-amis", Key=envelope_key(web), Body=json.dumps(body).encode())
    out = failed(tree.doit("verify", "-i", "web"))
    assert "was changed: it does not hash to the AMI's Provenance tag" in out, out


def test_a_forged_ami_with_copied_tags_fails(signed):
    tree, _ = signed
    web = json.loads(tree.record("web").read_text())
    ec2 = tree.client("ec2")
    real = ec2.describe_images(ImageIds=[web["amis"][REGION]])["Images"][0]
    forged = ec2.copy_image(SourceImageId=real["ImageId"], SourceRegion=REGION,
                            Name="forged")["ImageId"]
    ec2.create_tags(Resources=[forged], Tags=real["Tags"])
    objects = tree.objects()
    tree.client("s3").put_object(Bucket="test-amis", Key=envelope_key(web).replace(
        web["amis"][REGION], forged), Body=objects[envelope_key(web)])
    out = failed(tree.doit("verify", "-a", forged))
    assert f"AMI {forged}: the signed statement is of" not in out
    assert f"web {forged}: the signed statement is of " in out and "not this AMI" in out, out


def test_a_missing_parent_statement_stops_the_chain(signed):
    tree, _ = signed
    base = json.loads(tree.record("base").read_text())
    tree.client("s3").delete_object(Bucket="test-amis", Key=envelope_key(base))
    out = failed(tree.doit("verify", "-i", "web"))
    assert out.count("signature ok") == 1 and f"base {base['amis'][REGION]}: no signed " \
        "statement at s3://" in out, out


def test_a_tree_that_builds_something_else_fails(signed):
    tree, _ = signed
    ok(tree.doit("verify", "-i", "web", "--worktree"))
    tree.append("ansible/roles/web_app/tasks/main.yml", "\n# edited\n")
    out = failed(tree.doit("verify", "-i", "web", "--worktree"))
    assert "the working tree builds something else: ansible/roles/web_app/tasks/main.yml " \
           "differs from the statement" in out, out
    ok(tree.doit("verify", "-i", "web"))        # the recorded commit still builds it


def test_an_unsigned_ami_fails_and_plan_says_so(tree, aws):
    ok(tree.doit("amis"))
    plan = ok(tree.doit("plan")).stdout
    assert "unsigned: base, build, deploy, web, worker (built without AMI_SIGNING_KEY" in plan
    out = failed(tree.doit("verify", "-i", "web", env={"AMI_SIGNING_KEY": kms_key(tree)}))
    assert "unsigned: it has no Provenance tag" in out, out


def test_a_build_that_cannot_be_signed_is_not_published(tree, aws, proxy):
    key = kms_key(tree)
    signs = proxy.fail(lambda r: r.headers.get("X-Amz-Target", "") == "TrentService.Sign")
    out = failed(tree.doit("ami:base", env={"AMI_SIGNING_KEY": key,
                                            "AWS_ENDPOINT_URL": proxy.url}))
    assert signs.hits >= 1 and "ERROR: image base: signing the provenance failed: KMS Sign" \
        in out and "nothing published" in out, out
    assert tree.packer_builds() == ["base"]
    assert "channels/main/base.json" not in tree.objects()
    amis = tree.client("ec2").describe_images(Owners=["self"])["Images"]
    assert [a for a in amis if {"Key": "Image", "Value": "base"} in a.get("Tags", [])] == []


def test_a_local_key_file_signs_and_its_public_half_verifies(tree, aws, tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.generate_private_key(ec.SECP256R1())
    (tree.path / "signing.pem").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    public = tmp_path / "public.pem"
    public.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    ok(tree.doit("ami:web", env={"AMI_SIGNING_KEY": "file:signing.pem"}))
    out = ok(tree.doit("verify", "-i", "web", "--key", str(public))).stdout
    assert [l.split()[0] for l in out.splitlines() if "signature ok" in l] == ["web", "base"]
    tree.append("ansible/roles/web_app/tasks/main.yml", "\n# edited\n")
    tree.reset_count()
    out = failed(tree.doit("ami:web", env={"AMI_SIGNING_KEY": "file:nope.pem"}))
    assert "AMI_SIGNING_KEY=file:nope.pem: cannot read" in out, out
    assert tree.packer_builds() == []                  # refused before Packer ran


def test_a_build_from_uncommitted_edits_is_not_what_its_commit_builds(signed):
    tree, _ = signed
    tree.append("ansible/roles/web_app/tasks/main.yml", "\n# not committed\n")
    ok(tree.doit("ami:web", env={"AMI_ALLOW_DIRTY": "1"}))      # published to main, dirty
    out = failed(tree.doit("verify", "-i", "web"))
    assert re.search(r"verify: web ami-\w+: commit [0-9a-f]{12} builds something else: "
                     r"ansible/roles/web_app/tasks/main.yml differs from the statement", out), out
    ok(tree.doit("verify", "-i", "web", "--worktree"))          # it is what the tree holds


def test_an_input_the_statement_leaves_out_is_found_by_walking_the_commit(signed):
    tree, _ = signed
    (tree.path / "ansible/roles/web_app/handlers/main.yml").unlink()   # deleted, not committed
    ok(tree.doit("ami:web", env={"AMI_ALLOW_DIRTY": "1"}))
    ok(tree.doit("verify", "-i", "web", "--worktree"))
    out = failed(tree.doit("verify", "-i", "web"))
    assert re.search(r"verify: web ami-\w+: commit [0-9a-f]{12} builds something else: "
                     r"ansible/roles/web_app/handlers/main.yml is an input there that the "
                     r"statement leaves out$", out, re.M), out


def built_from_an_uncommitted_amis_yaml(tree, old: str, new: str, image: str) -> str:
    """``image`` built with ``old`` replaced by ``new`` in amis.yaml, not
    committed; what verify of it says, failing."""
    text = (tree.path / "amis.yaml").read_text()
    assert old in text
    (tree.path / "amis.yaml").write_text(text.replace(old, new))
    ok(tree.doit(f"ami:{image}", env={"AMI_ALLOW_DIRTY": "1"}))
    return failed(tree.doit("verify", "-i", image))


def test_settings_the_commit_does_not_hold_fail(signed):
    tree, _ = signed
    out = built_from_an_uncommitted_amis_yaml(
        tree, "    regions: [eu-west-1, us-east-1]", "    regions: [eu-west-1]", "web")
    assert re.search(r"verify: web ami-\w+: commit [0-9a-f]{12} builds web with other "
                     r"settings: regions differ from the statement$", out, re.M), out
    ok(tree.doit("verify", "-i", "web", "--worktree"))


def test_explain_reads_a_signed_tree(signed):
    """The signed statements beside the digest records are not records."""
    tree, _ = signed
    web = json.loads(tree.record("web").read_text())
    for image in ("web", "base"):
        tree.record(image).unlink()          # only the bucket's records and statements remain
    out = ok(tree.doit("explain", "-a", web["amis"][REGION])).stdout
    assert "web" in out and "base" in out and "centos" in out, out


def test_the_signing_key_is_looked_up_once_per_run(tree, aws, proxy):
    key = kms_key(tree)
    ok(tree.doit("amis", env={"AMI_SIGNING_KEY": key, "AWS_ENDPOINT_URL": proxy.url}))
    target = lambda name: lambda r: r.headers.get("X-Amz-Target", "") == f"TrentService.{name}"
    # per image: its build's statement and its tests' result
    assert proxy.count(target("Sign")) == 10
    assert proxy.count(target("GetPublicKey")) == 1, "GetPublicKey per build, not per run"


def test_image_names_the_published_ami_on_a_dirty_tree(signed):
    """Uncommitted edits send a build to the dirty channel, but -i still
    names the AMI this branch published (the tests' default allows dirty)."""
    tree, _ = signed
    tree.append("ansible/roles/web_app/defaults/main.yml", "\n# not committed\n")
    clean = {"AMI_ALLOW_DIRTY": None}
    ok(tree.doit("verify", "-i", "web", env=clean))                  # what the commit built
    out = failed(tree.doit("verify", "-i", "web", "--worktree", env=clean))
    assert "the working tree builds something else: ansible/roles/web_app/defaults/main.yml " \
           "differs from the statement" in out, out


def test_a_parent_the_commit_does_not_build_on_fails(signed):
    tree, _ = signed
    out = built_from_an_uncommitted_amis_yaml(
        tree, "  web:\n    parent: base\n", "  web:\n    parent: worker\n", "web")
    assert re.search(r"verify: web ami-\w+: commit [0-9a-f]{12} builds web on base, not on "
                     r"worker as its statement says$", out, re.M), out


def test_a_source_the_commit_does_not_pin_fails(signed):
    tree, _ = signed
    other = tree.client("ec2").describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    out = built_from_an_uncommitted_amis_yaml(
        tree, "sandbox_ami: ami-bb9a6bc2", f"sandbox_ami: {other}", "base")
    assert re.search(rf"verify: base ami-\w+: commit [0-9a-f]{{12}} pins its source to "
                     rf"ami-bb9a6bc2, not {other}$", out, re.M), out


def test_the_source_is_named_by_the_statements_commit_not_the_checkout(signed):
    """A later commit that calls base the source cannot cut web's chain short."""
    from support.project import commit
    tree, _ = signed
    text = (tree.path / "amis.yaml").read_text()
    (tree.path / "amis.yaml").write_text(text.replace("  name: centos\n", "  name: base\n")
                                         .replace("  base:\n    parent: centos\n", ""))
    commit(tree.path, "base is the source now")
    out = ok(tree.doit("verify", "-i", "web")).stdout
    assert [l.split()[0] for l in out.splitlines() if "signature ok" in l] == ["web", "base"], out


def test_a_copy_in_another_region_verifies(signed):
    tree, _ = signed
    copy = json.loads(tree.record("web").read_text())["amis"]["us-east-1"]
    out = ok(tree.doit("verify", "-a", copy)).stdout
    assert out.splitlines()[0].startswith(f"web {copy} (us-east-1): signature ok"), out
