"""How Packer is handed an image: in the image's stage (exactly its inputs),
from the folder the image says Packer runs in, with the effective template
written where the template is (so ``{{template_dir}}`` is right), its var
files in order and only the variables it declares."""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from . import stage, template as templates

if TYPE_CHECKING:
    from .run import Run


def with_tools(env: dict[str, str]) -> dict[str, str]:
    """The environment with the tools beside this Python (the project's .venv,
    activated or not) first on PATH: Packer runs ansible-playbook, and
    ansible-lint runs it too."""
    return {**env, "PATH": os.pathsep.join([os.path.dirname(sys.executable),
                                            env.get("PATH", "")])}


@dataclass(frozen=True)
class Invocation:
    root: Path                          # the stage: the repository's inputs
    cwd: Path
    template: Path
    var_files: tuple[Path, ...]
    variables: dict[str, str]
    env: dict[str, str]
    data: dict
    dropped: tuple[str, ...]            # provisioners the sandbox left out

    def argv(self, exe: str, command: str, *options: str) -> list[str]:
        args = [exe, command, *options]
        for vf in self.var_files:
            args.append(f"-var-file={vf}")
        for key, value in sorted(self.variables.items()):
            args += ["-var", f"{key}={value}"]
        return [*args, str(self.template)]


@contextmanager
def prepared(run: Run, name: str, variables: dict[str, str], *, sandbox: bool,
             endpoint: str | None, tags: dict[str, str],
             env: dict[str, str]) -> Iterator[Invocation]:
    image = run.graph.images[name]
    inputs = run.inputs()[name]
    with stage.staged(run.graph.root, run.settings.stage, name, run.manifest(name),
                      run.hasher) as root:
        data, dropped = templates.effective(inputs.template, image=name, regions=image.regions,
                                            endpoint=endpoint, sandbox=sandbox, tags=tags)
        path = root / inputs.template.path
        stage.replace_file(path, (json.dumps(data, indent=2) + "\n").encode())
        env = with_tools(env)
        config = next((r.config for r in inputs.ansible if r.config), None)
        if config:
            env["ANSIBLE_CONFIG"] = str(root / config)
        else:
            # No ansible.cfg of the project's: none of the build host's either.
            empty = root / ".amis-ansible.cfg"
            empty.write_text("")
            env["ANSIBLE_CONFIG"] = str(empty)
        yield Invocation(root=root, cwd=root / image.packer_dir, template=path,
                         var_files=tuple(root / vf for vf in image.var_files),
                         variables=templates.declared(inputs.template, variables), env=env,
                         data=data, dropped=tuple(dropped))
