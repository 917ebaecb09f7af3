"""The chain walk of ``doit verify``, in process on the fakes, with a local
PEM key: each link from the AMI's own tags back to the source, and where
the walk stops when a link is broken."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.fakes import FakeTree as Tree, build_all
from tasks.core.errors import AmiError


def signing_with_a_local_key(tree: Tree, public: Path) -> None:
    """The tree signs with signing.pem; the public half is written to ``public``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    private = ec.generate_private_key(ec.SECP256R1())
    (tree.path / "signing.pem").write_bytes(private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    public.write_bytes(private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    tree.env["AMI_SIGNING_KEY"] = "file:signing.pem"


@pytest.fixture
def signed(tree, tmp_path) -> tuple[Tree, str]:
    """The tree built and signed with a local key; the public half's path."""
    signing_with_a_local_key(tree, tmp_path / "public.pem")
    build_all(tree.run()[0])
    return tree, str(tmp_path / "public.pem")


def record(tree: Tree, image: str) -> dict:
    return json.loads(tree.store.objects[f"channels/main/{image}.json"])


def envelope_key(rec: dict) -> str:
    return f"digests/{rec['image']}/{rec['digest']}.{rec['amis']['eu-west-1']}.dsse.json"


def test_each_link_is_checked_back_to_the_source(signed):
    tree, public = signed
    app, out = tree.run()
    app.verifier.verify("", "web", public, worktree=False)
    lines = out.getvalue().splitlines()
    web, base = record(tree, "web"), record(tree, "base")
    assert lines[0].startswith(f"web {web['amis']['eu-west-1']} (eu-west-1): signature ok, "
                               "subject ok, ") and "inputs as at commit " in lines[0]
    assert lines[1].startswith(f"base {base['amis']['eu-west-1']} (eu-west-1)")
    assert lines[1].endswith("built on source centos ami-bb9a6bc2") and len(lines) == 2


def test_the_walk_stops_at_the_parent_whose_statement_is_gone(signed):
    tree, public = signed
    del tree.store.objects[envelope_key(record(tree, "base"))]
    app, out = tree.run()
    with pytest.raises(AmiError, match=r"verify: base ami-\w+: no signed statement at "
                                       r"s3://memory/digests/base/"):
        app.verifier.verify("", "web", public, worktree=False)
    assert [l.split()[0] for l in out.getvalue().splitlines()] == ["web"]   # web's link held


def test_a_parent_statement_swapped_for_another_signed_one_breaks_the_chain(signed):
    """A bucket writer puts worker's (validly signed) statement where base's
    was: it hashes to neither base's Provenance tag nor what web names."""
    tree, public = signed
    worker = tree.store.objects[envelope_key(record(tree, "worker"))]
    tree.store.objects[envelope_key(record(tree, "base"))] = worker
    app, _ = tree.run()
    with pytest.raises(AmiError, match=r"verify: base ami-\w+: the statement at .* was "
                                       r"changed: it does not hash to the AMI's Provenance tag"):
        app.verifier.verify("", "web", public, worktree=False)


def test_an_edited_record_proves_nothing(signed):
    """verify starts from the AMI's tags and the signed statement, never
    from the record, so a record rewritten in the bucket changes nothing."""
    tree, public = signed
    web = record(tree, "web")
    forged = {**web, "inputs": {**web["inputs"], "ansible/evil.yml": "0" * 64}}
    tree.store.objects["channels/main/web.json"] = json.dumps(forged).encode()
    app, out = tree.run()
    app.verifier.verify(web["amis"]["eu-west-1"], "", public, worktree=False)
    assert "evil" not in out.getvalue() and out.getvalue().count("signature ok") == 2


@pytest.mark.parametrize("commit", ["--output=/tmp/x", "../../etc", "unknown", "HEAD"])
def test_a_statement_naming_no_commit_id_is_never_handed_to_git(signed, monkeypatch, commit):
    """The commit goes to git and names a folder: only an object id may."""
    from tasks.core import provenance
    tree, public = signed
    real = provenance.link

    def forged(statement):
        link = real(statement)
        return link if link.image != "web" else type(link)(**{**link.__dict__, "commit": commit})
    monkeypatch.setattr(provenance, "link", forged)
    monkeypatch.setattr(tree.git, "export", lambda *a: pytest.fail("git was asked"))
    app, _ = tree.run()
    with pytest.raises(AmiError, match=r"verify: web ami-\w+: its statement names no commit "
                                       r"\(.*built outside git\?\): only --worktree can check it"):
        app.verifier.verify("", "web", public, worktree=False)


def test_an_amis_yaml_linked_to_outside_the_commit_is_not_read(tree, tmp_path):
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text((tree.path / "amis.yaml").read_text())
    (tree.path / "amis.yaml").unlink()
    (tree.path / "amis.yaml").symlink_to(outside)
    signing_with_a_local_key(tree, tmp_path / "public.pem")
    build_all(tree.run()[0])
    with pytest.raises(AmiError, match=r"verify: web ami-\w+: commit [0-9a-f]{12}'s amis.yaml is "
                                       r"a symlink to outside the repository"):
        tree.run()[0].verifier.verify("", "web", str(tmp_path / "public.pem"), worktree=False)


def test_require_tests_asks_for_the_amis_own_signed_passing_result(signed):
    tree, public = signed
    web = record(tree, "web")
    assert web["tests"]["statement"]                       # its signed result's sha256
    app, out = tree.run()
    app.verifier.verify("", "web", public, worktree=False, require_tests=True)
    assert f"web {web['amis']['eu-west-1']} (eu-west-1): passed its tests " \
           f"{web['tests']['digest'][:12]} (signed)" in out.getvalue()
    key = f"digests/web/{web['digest']}.{web['amis']['eu-west-1']}.tests.dsse.json"
    base = record(tree, "base")
    tree.store.objects[key] = tree.store.objects[                    # another AMI's result
        f"digests/base/{base['digest']}.{base['amis']['eu-west-1']}.tests.dsse.json"]
    app, _ = tree.run()
    with pytest.raises(AmiError, match="the test result is of another AMI"):
        app.verifier.verify("", "web", public, worktree=False, require_tests=True)
    del tree.store.objects[key]
    app, _ = tree.run()
    with pytest.raises(AmiError, match="no signed test result at .*: it never passed its tests"):
        app.verifier.verify("", "web", public, worktree=False, require_tests=True)
