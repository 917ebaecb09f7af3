"""Static checks that fail in seconds, before minutes of Packer:
``packer validate``, ``ansible-playbook --syntax-check`` and ``ansible-lint``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from typing import TYPE_CHECKING

from . import packer
from .config import packer_executable
from .errors import AmiError
from .graph import Graph
from .records import write_atomic

if TYPE_CHECKING:
    from .run import Run

LINT_CONFIG = ".ansible-lint"
_PLACEHOLDER_AMI = "ami-00000000"       # validate needs a value; no AMI is looked up


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        raise AmiError(f"{name} not found: install the requirements "
                       "(python3 -m pip install -r requirements.txt)")
    return found


def _run(argv: list[str], cwd: Path, what: str, env: dict[str, str] | None = None) -> None:
    """Run a checker; on failure its output is part of the error."""
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()
        sys.__stdout__.write(output + "\n")
        problem = next((line.strip(" *") for line in output.splitlines()
                        if "error" in line.lower() or line.lstrip().startswith("*")), "")
        raise AmiError(f"{what} failed{': ' + problem if problem else ''} (details above)")


def packer_template(run: Run, name: str) -> None:
    """`packer validate` on the template as the build would hand it over,
    with the variables the build passes (the parent's AMI is a placeholder)."""
    settings, graph = run.settings, run.graph
    image = graph.images[name]
    exe = packer_executable(settings)
    template = packer.effective_template(graph.root / image.template, image,
                                         settings.endpoint, sandbox=False)
    work = settings.work / f"{name}-validate.json"
    write_atomic(work, (json.dumps(template, indent=2) + "\n").encode())
    variables = {**dict(image.vars), **packer.build_variables(
        name, graph.region, image.playbook, source_ami=_PLACEHOLDER_AMI, parent_image=image.parent,
        digest="0" * 64, git={"branch": "validate", "commit": "validate", "dirty": False},
        build_time="validate", packer_version="validate")}
    argv = [exe, "validate", *packer.var_args(variables), str(work)]
    _run(argv, graph.root, f"packer validate {image.template}", env=run.aws.subprocess_env())


def playbook_syntax(graph: Graph, name: str) -> None:
    playbook = graph.images[name].playbook
    _run([_tool("ansible-playbook"), "--syntax-check", "-i", "localhost,", playbook],
         graph.root, f"ansible-playbook --syntax-check {playbook}")


def lint(root: Path, playbooks: list[str]) -> None:
    _run([_tool("ansible-lint"), "--nocolor", "-c", LINT_CONFIG, *playbooks, "ansible/roles"],
         root, "ansible-lint")
