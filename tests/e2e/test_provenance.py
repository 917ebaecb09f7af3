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
