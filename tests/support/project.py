"""Helpers shared by the tests: a throw-away copy of the repository in a
git repository of its own, settings for the sandbox on the test emulator,
``doit`` as a subprocess, and the checks every run's output gets."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
FAKE_PACKER = ROOT / "bench" / "fake_packer.py"     # a stand-in with a controlled build time

BUCKET = "test-amis"
REGION = "eu-west-1"
IMAGES = ["base", "build", "deploy", "web", "worker"]
PROJECT_FILES = ["dodo.py", "amis.yaml", "tasks", "packer", "ansible", "cloud-init",
                 "ami-tests", ".ansible-lint", ".gitignore"]
CODE_FILES = ["dodo.py", "tasks", ".gitignore"]


def ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """A doit run that must have succeeded."""
    assert result.returncode == 0, f"doit failed:\n{result.stdout}\n{result.stderr}"
    return result


def failed(result: subprocess.CompletedProcess) -> str:
    """A doit run that must have failed, without a traceback; its output."""
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert "Traceback" not in out, out
    return out


@dataclass
class AwsClients:
    s3: object
    ec2: object
    url: str

    def make_bucket(self, bucket: str = BUCKET) -> None:
        self.s3.create_bucket(Bucket=bucket,
                              CreateBucketConfiguration={"LocationConstraint": REGION})

    def client(self, service: str) -> object:
        """Another service's client on the same emulator."""
        import boto3
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="test", aws_secret_access_key="test")

    def objects(self, bucket: str = BUCKET) -> dict[str, bytes]:
        """Every object in the bucket, key -> body."""
        out = {}
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = self.s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
        return out


GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]


def commit(path: Path, message: str = "change") -> None:
    subprocess.run(GIT + ["add", "-A"], cwd=path, check=True)
    subprocess.run(GIT + ["commit", "-qm", message], cwd=path, check=True)


def copy_files(dest: Path, files: list[str] = PROJECT_FILES,
               tree: Callable[[Path], object] | None = None) -> Path:
    """The project's code and its example tree (or ``tree``'s), in a new folder."""
    dest.mkdir(parents=True)
    for name in files:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    if tree is not None:
        tree(dest)
    return dest


def copy_project(dest: Path, files: list[str] = PROJECT_FILES,
                 tree: Callable[[Path], object] | None = None) -> Path:
    """The project's code (and its example tree, or ``tree``'s) in a new git repository."""
    copy_files(dest, files, tree)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    commit(dest, "tree")
    return dest


class Files:
    """Writing a tree's files, for trees with a ``path``."""
    path: Path

    def write(self, rel: str, text: str) -> None:
        path = self.path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)

    def append(self, rel: str, text: str) -> None:
        self.write(rel, (self.path / rel).read_text() + text)


def image_setting(project: "Project", image: str, line: str) -> None:
    """Add a setting (``key: value``) to an image in amis.yaml."""
    graph = project.path / "amis.yaml"
    text = graph.read_text()
    head = re.search(rf"^  {image}:\n", text, re.M)
    assert head, f"no image {image} in amis.yaml"
    graph.write_text(text[:head.end()] + f"    {line}\n" + text[head.end():])


def legacy_template(project: "Project", image: str) -> Path:
    """Give ``image`` a JSON template of its own (tests/fixtures/legacy_ami.json,
    in the shape of the example's first templates), for tests that edit one."""
    path = project.path / f"packer/{image}_ami.json"
    shutil.copy(ROOT / "tests/fixtures/legacy_ami.json", path)
    image_setting(project, image, f"template: packer/{image}_ami.json")
    return path


def print_sensitive(project: "Project", variable: str, command: str) -> None:
    """base's template gets a sensitive variable from the environment (named
    like the variable, upper case) and a shell-local step that prints it:
    ``command`` with ``{value}`` where the value goes."""
    template = legacy_template(project, "base")
    data = json.loads(template.read_text())
    data["variables"][variable] = f"{{{{env `{variable.upper()}`}}}}"
    data["sensitive-variables"] = [variable]
    data["provisioners"].append({"type": "shell-local", "inline": [
        command.replace("{value}", f"{{{{user `{variable}`}}}}")]})
    template.write_text(json.dumps(data, indent=2))
    image_setting(project, "base", f"env_inputs: [{variable.upper()}]")


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


@dataclass
class Project(Files):
    """A copy of the repository and a way to run doit in it."""
    path: Path
    env: dict[str, str]
    runs_file: Path
    extra: dict[str, str] = field(default_factory=dict)

    def doit(self, *args: str, env: dict[str, str] | None = None,
             timeout: float = 300) -> subprocess.CompletedProcess:
        full_env = {**self.env, **(env or {})}
        full_env = {k: v for k, v in full_env.items() if v is not None}
        return subprocess.run([sys.executable, "-m", "doit", *args], cwd=self.path,
                              env=full_env, capture_output=True, text=True, timeout=timeout)

    def packer_builds(self) -> list[str]:
        """Images Packer built so far (one line per `packer build`)."""
        if not self.runs_file.exists():
            return []
        return [line.split()[0] for line in self.runs_file.read_text().splitlines()
                if line.strip()]

    def reset_count(self) -> None:
        self.runs_file.unlink(missing_ok=True)

    def record(self, image: str) -> Path:
        return self.path / ".amis" / "records" / f"{image}.json"

    def digest(self, image: str) -> str:
        """The digest `doit amis` would build ``image`` with now (its parent
        must have an AMI)."""
        code = ("import sys; from pathlib import Path; from tasks.cli.compose import App; "
                "print(App.load(Path('.')).lookup.decision().verdicts[sys.argv[1]].digest)")
        done = subprocess.run([sys.executable, "-c", code, image], cwd=self.path, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0 and len(done.stdout.strip()) == 64, done.stderr
        return done.stdout.strip()

    def clone(self, dest: Path) -> "Project":
        """A fresh clone: new folder, new mtimes, no doit database, no records."""
        subprocess.run(["git", "clone", "-q", str(self.path), str(dest)], check=True)
        return Project(dest, self.env, self.runs_file)


def base_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "AMI_", "BUILDKITE_")) and k != "PACKER"}
    env.update({
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": REGION, "HOME": str(tmp / "home"),
        "PACKER_CACHE_DIR": str(tmp / "packer_cache"),
        "CHECKPOINT_DISABLE": "1",   # Packer: no version check over the network
    })
    (tmp / "home").mkdir(exist_ok=True)
    return env


def sandbox_env(tmp_path: Path, url: str, packer: Path) -> dict[str, str]:
    env = base_env(tmp_path)
    env.update({"AWS_ENDPOINT_URL": url, "AMI_SANDBOX": "1", "AMI_BUCKET": BUCKET,
                "PACKER": str(packer),
                # `doit validate` has tests of its own (test_example_stack.py)
                "AMI_SKIP_VALIDATE": "1",
                # tests edit files without committing; channel rules are tested on their own
                "AMI_ALLOW_DIRTY": "1"})
    return env


def plan_rows(stdout: str) -> dict[str, str]:
    """`doit plan`'s rows, by image."""
    return {line.split()[0]: line for line in stdout.splitlines()
            if line.strip() and not line.startswith(("image", "---"))}


def current_ami(aws: AwsClients, image: str, channel: str = "main") -> str:
    """The AMI id in the main region of the record current in ``channel``."""
    return json.loads(aws.objects()[f"channels/{channel}/{image}.json"])["amis"][REGION]
