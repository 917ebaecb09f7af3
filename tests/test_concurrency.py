"""Two agents, one bucket: each image is built once, locks expire."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import BUCKET, IMAGES, ok



FAST_LOCKS = {"AMI_LOCK_POLL_SECONDS": "0.2"}


def start(project, env=None):
    return subprocess.Popen([sys.executable, "-m", "doit", "amis"], cwd=project.path,
                            env={**project.env, **FAST_LOCKS, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_two_agents_started_together_build_each_image_once(project, tmp_path, aws):
    agent_b = project.clone(tmp_path / "agent-b")
    procs = [start(project), start(agent_b)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for proc, out in zip(procs, outs):
        assert proc.returncode == 0, out
    assert sorted(project.packer_builds()) == sorted(IMAGES)     # once each, in total
    assert any("waiting for" in out for out in outs), "the agents never met"
    records = [json.loads(p.record(i).read_text()) for p in (project, agent_b) for i in IMAGES]
    assert records[:len(IMAGES)] == records[len(IMAGES):]       # both see the same AMIs
    assert not [k for k in aws.objects() if "/locks/" in f"/{k}" or k.startswith("locks/")]


def _lock(aws, project, image, owner, expires_in, digest=None, **extra):
    """A lock as another agent would hold it, on the digest `doit amis` will build."""
    aws.make_bucket()
    digest = digest or project.digest(image)
    aws.s3.put_object(Bucket=BUCKET, Key=f"locks/{image}/{digest}.json", Body=json.dumps(
        {"owner": owner, "acquired": time.time(), "expires": time.time() + expires_in,
         **extra}))
    return digest


def test_a_dead_agents_lock_expires(project, aws):
    _lock(aws, project, "base", "dead-agent:1234", expires_in=-60)
    result = project.doit("amis", env=FAST_LOCKS)
    ok(result)
    assert "[base] took over the lock of dead-agent:1234 (it had expired)" in result.stdout
    assert sorted(project.packer_builds()) == sorted(IMAGES)
    assert not [k for k in aws.objects() if k.startswith("locks/")]


def test_a_live_lock_is_waited_for(project, aws):
    _lock(aws, project, "base", "other-agent:99", expires_in=2)
    began = time.monotonic()
    result = ok(project.doit("amis", env=FAST_LOCKS))
    assert "[base] waiting for other-agent:99, who is building base with these inputs" \
        in result.stdout
    assert "took over the lock of other-agent:99 (it had expired)" in result.stdout
    assert time.monotonic() - began >= 2
    assert sorted(project.packer_builds()) == sorted(IMAGES)


def test_a_lock_on_other_inputs_of_the_same_image_does_not_wait(project, aws):
    """A hung feature-branch build of web must not block main's web."""
    _lock(aws, project, "base", "feature-agent:7", expires_in=3600, digest="e" * 64)
    result = ok(project.doit("amis", env=FAST_LOCKS))
    assert "waiting for" not in result.stdout
    assert sorted(project.packer_builds()) == sorted(IMAGES)


def test_a_lock_whose_owner_died_on_this_host_is_taken_over_at_once(project, aws):
    import os
    import socket
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    _lock(aws, project, "base", f"{socket.gethostname()}:{dead}:job", expires_in=3600,
          host=socket.gethostname(), pid=int(dead))
    assert not os.path.exists(f"/proc/{dead}")
    result = ok(project.doit("amis", env=FAST_LOCKS))
    assert f"took over the lock of {socket.gethostname()}:{dead}:job (that process is gone)" \
        in result.stdout
    assert "waiting for" not in result.stdout


def test_a_lock_with_an_unreadable_expiry_is_taken_over(project, aws):
    aws.make_bucket()
    digest = project.digest("base")
    aws.s3.put_object(Bucket=BUCKET, Key=f"locks/base/{digest}.json",
                      Body=b'{"owner": "nan-agent", "expires": NaN}')
    result = ok(project.doit("amis", env=FAST_LOCKS))
    assert "took over the lock of nan-agent (it had expired)" in result.stdout


def test_a_newer_current_record_is_not_overwritten_by_an_older_build(project, aws, monkeypatch):
    """Agent A built web; agent B's slower, earlier-started build of other
    inputs finishes later: its publish must not replace A's newer record."""
    from tasks.core.records import Record
    from tasks.ops.run import Run

    ok(project.doit("amis"))
    newer = json.loads(aws.objects()["channels/main/web.json"])
    older = Record(**{**newer, "digest": "f" * 64,
                      "build_started": "2000-01-01T00:00:00+00:00",
                      "amis": {"eu-west-1": "ami-0000000f", "us-east-1": "ami-0000000f"}})
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    run = Run.load(project.path, {**project.env, "AWS_ENDPOINT_URL": aws.url})
    original = run.registry.get
    calls = {"n": 0}

    def stale_read(key):
        # The first read returns what B saw before A published: an older pointer.
        calls["n"] += 1
        found = original(key)
        if calls["n"] == 1 and key.endswith("channels/main/web.json") and found:
            return found[0], '"0000000000000000000000000000000f"'
        return found
    run.registry.get = stale_read
    result = run.registry.publish(older, "main", new_build=True)
    assert result.digest == newer["digest"]
    assert json.loads(aws.objects()["channels/main/web.json"]) == newer
    assert f"digests/web/{'f' * 64}.json" in aws.objects()       # B's build is still kept


def test_builds_deciding_at_once_fetch_each_digest_record_once(project, monkeypatch):
    """Threads of one run (doit -n N -P thread) that decide together share one
    lookup: the others wait for it instead of fetching the same records."""
    import threading
    from tasks.core import decision
    from tasks.ops.run import Run
    for key, value in project.env.items():
        if key.startswith(("AWS_", "AMI_")):
            monkeypatch.setenv(key, value)
    run = Run.load(project.path, project.env)
    run.lookup.pull()
    threads = 6
    entered, fetched = [], []
    pure, fetch = decision.decide, run.registry.by_digest
    everyone_deciding = threading.Event()

    def counting_decide(*args):
        entered.append(1)
        if len(entered) >= threads:
            everyone_deciding.set()
        return pure(*args)

    def counting_fetch(wanted):
        everyone_deciding.wait(10)       # without the shared lookup, all would be here now
        fetched.extend(wanted)
        return fetch(wanted)

    monkeypatch.setattr(decision, "decide", counting_decide)
    monkeypatch.setattr(run.registry, "by_digest", counting_fetch)
    workers = [threading.Thread(target=run.lookup.decision) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(30)
    assert fetched and len(fetched) == len(set(fetched)), fetched
