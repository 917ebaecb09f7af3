"""Signed provenance with the real Packer 1.6.6 in the sandbox, whose
emulator's KMS signs (alias/amis-sandbox is made on first use): every AMI
of the tree verifies; revoking base rebuilds the five images built on it,
none on the old AMI; verify then refuses the old AMIs and passes the new."""

from __future__ import annotations

import json

from support.project import IMAGES, REGION, failed, ok

KEY = {"AMI_SIGNING_KEY": "alias/amis-sandbox"}


def test_a_signed_tree_verifies_and_a_revoked_base_rebuilds_it(project, aws):
    project.env.update(KEY)
    ok(project.doit("amis"))
    assert sorted(project.packer_builds()) == sorted(IMAGES)
    for image in IMAGES:
        out = ok(project.doit("verify", "-i", image)).stdout
        links = [line for line in out.splitlines() if "signature ok, subject ok" in line]
        assert len(links) == (1 if image == "base" else 2), out
        assert links[-1].endswith("built on source centos ami-bb9a6bc2"), out
    old = {image: json.loads(project.record(image).read_text())["amis"][REGION]
           for image in IMAGES}
    ok(project.doit("revoke", "-i", "base", "--reason", "compromised"))
    assert "revoked" in failed(project.doit("verify", "-a", old["web"]))
    ok(project.doit("amis"))
    assert len(project.packer_builds()) == 2 * len(IMAGES)       # every image again
    for image in IMAGES:
        record = json.loads(project.record(image).read_text())
        assert record["amis"][REGION] != old[image]
        if image != "base":
            assert record["parent"]["ami"] != old["base"]
        ok(project.doit("verify", "-i", image))


def test_each_way_to_break_the_chain_fails_with_the_real_packer(project, aws, tmp_path):
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    project.env.update(KEY)
    ok(project.doit("amis"))
    web = json.loads(project.record("web").read_text())
    base = json.loads(project.record("base").read_text())
    key = lambda r: f"digests/{r['image']}/{r['digest']}.{r['amis'][REGION]}.dsse.json"  # noqa
    s3, bucket = aws.s3, "test-amis"
    other = tmp_path / "other.pem"
    other.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    assert "the signature does not verify with key" in failed(
        project.doit("verify", "-i", "web", "--key", str(other)))
    # a forged AMI with web's tags and web's statement copied beside it
    real = aws.ec2.describe_images(ImageIds=[web["amis"][REGION]])["Images"][0]
    forged = aws.ec2.copy_image(SourceImageId=real["ImageId"], SourceRegion=REGION,
                                Name="forged")["ImageId"]
    aws.ec2.create_tags(Resources=[forged], Tags=real["Tags"])
    body = s3.get_object(Bucket=bucket, Key=key(web))["Body"].read()
    s3.put_object(Bucket=bucket, Key=key(web).replace(web["amis"][REGION], forged), Body=body)
    assert "not this AMI" in failed(project.doit("verify", "-a", forged))
    # a tampered statement
    envelope = json.loads(body)
    envelope["payload"] = base64.b64encode(base64.b64decode(envelope["payload"]).replace(
        b'"channel":"main"', b'"channel":"prod"')).decode()
    s3.put_object(Bucket=bucket, Key=key(web), Body=json.dumps(envelope).encode())
    assert "was changed" in failed(project.doit("verify", "-i", "web"))
    s3.put_object(Bucket=bucket, Key=key(web), Body=body)
    ok(project.doit("verify", "-i", "web"))
    # a missing parent statement
    parent = s3.get_object(Bucket=bucket, Key=key(base))["Body"].read()
    s3.delete_object(Bucket=bucket, Key=key(base))
    assert "no signed statement at s3://" in failed(project.doit("verify", "-i", "web"))
    s3.put_object(Bucket=bucket, Key=key(base), Body=parent)
    # a leaf revoked: only it rebuilds; --undo restores the old one first
    ok(project.doit("revoke", "-i", "worker", "-r", "test"))
    ok(project.doit("revoke", "-i", "worker", "--undo"))
    ok(project.doit("verify", "-i", "worker"))
    worker = json.loads(project.record("worker").read_text())["amis"][REGION]
    ok(project.doit("revoke", "-a", worker, "-r", "test"))
    before = len(project.packer_builds())
    ok(project.doit("amis"))
    assert project.packer_builds()[before:] == ["worker"]
    # an unsigned build
    project.env.pop("AMI_SIGNING_KEY")
    ok(project.doit("revoke", "-i", "deploy", "-r", "test"))
    ok(project.doit("amis"))
    out = failed(project.doit("verify", "-i", "deploy", env=KEY))
    assert "unsigned: it has no Provenance tag" in out, out
