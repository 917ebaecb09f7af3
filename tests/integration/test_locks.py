"""Locks another agent holds, met by doit in process: expired, live, on
other inputs, dead on this host, unreadable."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from support.project import BUCKET, IMAGES, ok

FAST_LOCKS = {"AMI_LOCK_POLL_SECONDS": "0.2"}


def _lock(aws, tree, image, owner, expires_in, digest=None, **extra):
    """A lock as another agent would hold it, on the digest `doit amis` will build."""
    aws.make_bucket()
    digest = digest or tree.digest(image)
    aws.s3.put_object(Bucket=BUCKET, Key=f"locks/{image}/{digest}.json", Body=json.dumps(
        {"owner": owner, "acquired": time.time(), "expires": time.time() + expires_in,
         **extra}))
    return digest


def test_a_dead_agents_lock_expires(tree, aws):
    _lock(aws, tree, "base", "dead-agent:1234", expires_in=-60)
    result = tree.doit("amis", env=FAST_LOCKS)
    ok(result)
    assert "[base] took over the lock of dead-agent:1234 (it had expired)" in result.stdout
    assert sorted(tree.packer_builds()) == sorted(IMAGES)
    assert not [k for k in aws.objects() if k.startswith("locks/")]


def test_a_live_lock_is_waited_for(tree, aws):
    _lock(aws, tree, "base", "other-agent:99", expires_in=2)
    began = time.monotonic()
    result = ok(tree.doit("amis", env=FAST_LOCKS))
    assert "[base] waiting for other-agent:99, who is building base with these inputs" \
        in result.stdout
    assert "took over the lock of other-agent:99 (it had expired)" in result.stdout
    assert time.monotonic() - began >= 2
    assert sorted(tree.packer_builds()) == sorted(IMAGES)


def test_a_lock_on_other_inputs_of_the_same_image_does_not_wait(tree, aws):
    """A hung feature-branch build of web must not block main's web."""
    _lock(aws, tree, "base", "feature-agent:7", expires_in=3600, digest="e" * 64)
    result = ok(tree.doit("amis", env=FAST_LOCKS))
    assert "waiting for" not in result.stdout
    assert sorted(tree.packer_builds()) == sorted(IMAGES)


def test_a_lock_whose_owner_died_on_this_host_is_taken_over_at_once(tree, aws):
    import os
    import socket
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    _lock(aws, tree, "base", f"{socket.gethostname()}:{dead}:job", expires_in=3600,
          host=socket.gethostname(), pid=int(dead))
    assert not os.path.exists(f"/proc/{dead}")
    result = ok(tree.doit("amis", env=FAST_LOCKS))
    assert f"took over the lock of {socket.gethostname()}:{dead}:job (that process is gone)" \
        in result.stdout
    assert "waiting for" not in result.stdout


def test_a_lock_with_an_unreadable_expiry_is_taken_over(tree, aws):
    aws.make_bucket()
    digest = tree.digest("base")
    aws.s3.put_object(Bucket=BUCKET, Key=f"locks/base/{digest}.json",
                      Body=b'{"owner": "nan-agent", "expires": NaN}')
    result = ok(tree.doit("amis", env=FAST_LOCKS))
    assert "took over the lock of nan-agent (its TTL could not be read)" in result.stdout


def test_a_lock_whose_create_reply_was_lost_is_recognised_as_our_own(tree, aws, proxy):
    """The create went through, its reply did not; the client's retry meets
    the lock it made (412) and must not wait for itself until the TTL."""
    aws.make_bucket()
    creates = proxy.lose(lambda r: r.method == "PUT" and "/locks/base/" in r.path
                         and r.headers.get("If-None-Match") == "*")
    began = time.monotonic()
    result = ok(tree.doit("ami:base", env={**FAST_LOCKS, "AWS_ENDPOINT_URL": proxy.url,
                                           "AMI_LOCK_TTL_SECONDS": "60"}))
    assert creates.hits == 1
    assert "waiting for" not in result.stdout, result.stdout
    assert time.monotonic() - began < 60
    assert tree.packer_builds() == ["base"]
    assert not [k for k in aws.objects() if k.startswith("locks/")]
