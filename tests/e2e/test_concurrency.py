"""Two agents, one bucket, started together: each image is built once."""

from __future__ import annotations

import json
import subprocess
import sys

from support.project import IMAGES
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
