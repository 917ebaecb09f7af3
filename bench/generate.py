"""Generated AMI trees for the benchmarks: N images, 4 levels deep, each
parent with at most 8 children, a role per image, and 10,000 role files
(about 50 MB) in all."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_AMI = "ami-bb9a6bc2"          # an image the emulator knows
TEMPLATE = {
    "variables": {"image": "", "source_ami": "", "region": "eu-west-1", "build_time": "",
                  "digest": ""},
    "builders": [{
        "type": "amazon-ebs", "region": "{{user `region`}}", "source_ami": "{{user `source_ami`}}",
        "instance_type": "t3.small", "ssh_username": "ec2-user",
        "ami_name": "{{user `image`}}-{{user `build_time`}}-{{uuid}}",
        "tags": {"Image": "{{user `image`}}", "Digest": "{{user `digest`}}",
                 "ManagedBy": "amis-doit"},
    }],
    "provisioners": [{"type": "ansible", "playbook_file": "{{user `playbook`}}"}],
}


def levels(images: int, depth: int = 4, fanout: int = 8) -> list[int]:
    """How many images on each level: one root, then growing towards the leaves."""
    rest = images - 1
    sizes = [1]
    for level in range(1, depth - 1):
        want = math.ceil(rest ** (level / (depth - 1))) - sum(sizes[1:])
        sizes.append(max(1, min(sizes[-1] * fanout, want)))
    sizes.append(images - sum(sizes))
    assert sizes[-1] <= sizes[-2] * fanout, sizes
    return sizes


def tree(images: int, depth: int = 4, fanout: int = 8) -> dict[str, str]:
    """Image name -> parent name, parents first."""
    parents: dict[str, str] = {}
    previous = ["centos"]
    for level, size in enumerate(levels(images, depth, fanout), 1):
        current = [f"l{level}-{i:03d}" for i in range(size)]
        for i, name in enumerate(current):
            parents[name] = previous[i % len(previous)]
        previous = current
    return parents


def generate(dest: Path, images: int, files: int = 10_000, file_size: int = 5_000,
             seed: int = 1) -> dict[str, str]:
    """A git repository at ``dest`` with this project's code and a generated tree."""
    rng = random.Random(seed)
    dest.mkdir(parents=True)
    shutil.copy2(ROOT / "dodo.py", dest / "dodo.py")
    shutil.copytree(ROOT / "tasks", dest / "tasks", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(ROOT / ".gitignore", dest / ".gitignore")
    parents = tree(images)
    per_image = files // images
    for name in parents:
        (dest / "packer").mkdir(exist_ok=True)
        (dest / f"packer/{name}_ami.json").write_text(json.dumps(TEMPLATE, indent=2))
        role = dest / f"ansible/roles/r_{name}"
        (role / "tasks").mkdir(parents=True)
        (role / "files").mkdir()
        (role / "tasks/main.yml").write_text(
            f"---\n- name: Install {name}\n  ansible.builtin.copy:\n    src: files/\n"
            f"    dest: /opt/{name}/\n    mode: \"0644\"\n")
        for i in range(per_image - 1):
            (role / f"files/f{i:04d}.txt").write_bytes(rng.randbytes(file_size))
        (dest / f"ansible/{name}_ami.yaml").write_text(
            f"---\n- name: {name}\n  hosts: all\n  become: true\n  roles:\n    - r_{name}\n")
    graph = ["region: eu-west-1", "source:", "  name: centos", f"  ami: {SOURCE_AMI}", "images:"]
    for name, parent in parents.items():
        graph += [f"  {name}:", f"    parent: {parent}"]
    (dest / "amis.yaml").write_text("\n".join(graph) + "\n")
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=dest, check=True)
    subprocess.run(git + ["add", "-A"], cwd=dest, check=True)
    subprocess.run(git + ["commit", "-qm", "generated tree"], cwd=dest, check=True)
    return parents


def makefile(parents: dict[str, str], bucket: str) -> str:
    """The Make approach of make-approach.txt for the same tree: one id file
    per image, all downloaded with `aws s3 cp` before the build."""
    names = list(parents)
    lines = [
        f"BUCKET := {bucket}",
        "IDS := make-ids",
        "AMI_ID_FILES := " + " ".join(f"$(IDS)/{n}.txt" for n in names),
        "",
        ".PHONY: amis get-latest-ami-ids",
        "amis: get-latest-ami-ids $(AMI_ID_FILES)",
        "",
        "get-latest-ami-ids:",
        "\t@mkdir -p $(IDS)",
    ]
    lines += [f"\t@aws s3 cp s3://$(BUCKET)/make/{n}.txt $(IDS)/{n}.txt || true" for n in names]
    lines.append(f"\t@aws s3 cp s3://$(BUCKET)/make/centos.txt $(IDS)/centos.txt || "
                 f"(echo {SOURCE_AMI} > $(IDS)/centos.txt && "
                 f"aws s3 cp $(IDS)/centos.txt s3://$(BUCKET)/make/centos.txt)")
    for name, parent in parents.items():
        lines += [
            "",
            f"$(IDS)/{name}.txt: $(shell find ansible/roles/r_{name} -type f) "
            f"packer/{name}_ami.json ansible/{name}_ami.yaml $(IDS)/{parent}.txt",
            f"\t@$(PACKER) build -machine-readable -var image={name} "
            f"-var source_ami=$$(cat $(IDS)/{parent}.txt) packer/{name}_ami.json > $(IDS)/{name}.log",
            f"\t@if egrep -q 'Non-zero exit status|Error' $(IDS)/{name}.log; then exit 1; fi",
            f"\t@awk -F, '/,artifact,0,id,/ {{ split($$6, a, \":\"); print a[2] }}' "
            f"$(IDS)/{name}.log | sed 's/%!(PACKER_COMMA).*//' > $@",
            f"\t@aws s3 cp $@ s3://$(BUCKET)/make/{name}.txt",
        ]
    return "\n".join(lines) + "\n"
