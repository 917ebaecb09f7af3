"""A Hypothesis state machine: whatever a team does to the tree (edit, commit,
branch, go back to main, leave an edit uncommitted, revert, clone afresh) and
whatever happens to AWS (an AMI deregistered, a current record deleted),
the images `doit plan` says will build, the steps `doit pipeline` writes and
the images `doit amis` then builds are the same set. doit runs in process,
with its own up-to-date checks and database; Packer is the scripted one."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import boto3
import yaml
from hypothesis import HealthCheck, settings, strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, \
    run_state_machine_as_test

from support.inproc import Tree
from support.project import BUCKET, GIT, REGION, commit, copy_project, ok

EDITS = {
    "web role": "ansible/roles/web_app/defaults/main.yml",
    "worker role": "ansible/roles/worker_app/defaults/main.yml",
    "agent role": "ansible/roles/buildkite_agent/defaults/main.yml",
    "base playbook": "ansible/base_ami.yaml",
    "shared template": "packer/ami/ami.pkr.hcl",
}
IMAGES = ["base", "build", "deploy", "web", "worker"]


def _git(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(GIT + list(args), cwd=path, capture_output=True, text=True)


def make_machine(tmp: Path, url: str):
    class Machine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset",
                                                          method="POST"), timeout=10).read()
            self.count = len(list(tmp.glob("case-*")))
            root = tmp / f"case-{self.count}"
            # Uncommitted edits publish to the `dirty` channel, as they do for users.
            self.project = Tree(copy_project(root / "repo"), url, {"AMI_ALLOW_DIRTY": ""})
            self.clones = 0
            self.branches = 0
            self.edits = 0
            kw = dict(endpoint_url=url, region_name=REGION, aws_access_key_id="test",
                      aws_secret_access_key="test")
            self.s3, self.ec2 = boto3.client("s3", **kw), boto3.client("ec2", **kw)

        @property
        def path(self) -> Path:
            return self.project.path

        def clean(self) -> bool:
            return not _git(self.path, "status", "--porcelain").stdout.strip()

        @rule(what=st.sampled_from(sorted(EDITS)))
        def edit(self, what: str) -> None:
            self.edits += 1
            path = self.path / EDITS[what]
            path.write_text(path.read_text() + f"\n# edit {self.edits}\n")

        @precondition(lambda self: not self.clean())
        @rule()
        def commit(self) -> None:
            commit(self.path, f"commit after edit {self.edits}")

        @precondition(lambda self: self.clean())
        @rule()
        def branch(self) -> None:
            self.branches += 1
            _git(self.path, "checkout", "-q", "-b", f"topic-{self.branches}")

        @precondition(lambda self: self.clean())
        @rule()
        def checkout_main(self) -> None:
            _git(self.path, "checkout", "-q", "main")

        @precondition(lambda self: self.clean()
                      and _git(self.path, "rev-parse", "-q", "--verify", "HEAD~1").returncode == 0)
        @rule()
        def revert(self) -> None:
            _git(self.path, "revert", "--no-edit", "HEAD")

        @rule()
        def fresh_clone(self) -> None:
            """Another agent: a new clone of what is committed, no .amis/."""
            self.clones += 1
            self.project = self.project.clone(self.path.parent / f"clone-{self.clones}")

        def channel(self) -> str:
            return re.search(r"^channel (\S+)", ok(self.project.doit("plan")).stdout, re.M)[1]

        def record(self, image: str) -> dict | None:
            try:
                body = self.s3.get_object(Bucket=BUCKET,
                                          Key=f"channels/{self.channel()}/{image}.json")["Body"]
            except self.s3.exceptions.NoSuchKey:
                return None
            return json.loads(body.read())

        @rule(image=st.sampled_from(IMAGES))
        def deregister(self, image: str) -> None:
            record = self.record(image)
            if record:
                self.ec2.deregister_image(ImageId=record["amis"][REGION])

        @rule(image=st.sampled_from(IMAGES))
        def delete_current_record(self, image: str) -> None:
            self.s3.delete_object(Bucket=BUCKET, Key=f"channels/{self.channel()}/{image}.json")

        @invariant()
        def the_plan_is_what_amis_builds(self) -> None:
            plan = ok(self.project.doit("plan")).stdout
            planned = set(re.findall(r"^(\w+)\s+build\b", plan, re.M))
            ok(self.project.doit("pipeline"))
            steps = yaml.safe_load((self.path / ".amis/pipeline.yml").read_text())["steps"]
            stepped = {s["key"][4:] for s in steps if s.get("key", "").startswith("ami-")}
            self.project.reset_count()
            ok(self.project.doit("amis"))
            built = set(self.project.packer_builds())
            assert planned == stepped == built, (plan, stepped, built)

    return Machine


def test_plan_and_pipeline_are_exact_dry_runs_of_amis(tmp_path, tree):
    machine = make_machine(tmp_path, tree.url)
    run_state_machine_as_test(machine, settings=settings(
        max_examples=3, stateful_step_count=7, deadline=None, derandomize=True,
        suppress_health_check=list(HealthCheck)))
