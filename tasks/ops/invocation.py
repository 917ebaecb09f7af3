"""How Packer is handed an image: in the image's stage (exactly its inputs),
from the folder the image says Packer runs in, with the effective template
written where the template is (so ``{{template_dir}}`` is right), its var
files in order, only the variables it reads and only the source it builds."""

from __future__ import annotations

import hashlib
import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from ..adapters import stage
from ..adapters.packer import PackerRunner
from ..adapters.tools import Tools, with_tools
from ..core.errors import AmiError, FAILED
from ..core.files import write_atomic
from ..core.graph import Graph
from ..core.settings import Settings
from ..core.versions import version_tuple
from ..inputs import formats
from ..inputs.hcl.parse import json_name
from ..inputs.image import AnsibleRun
from ..inputs.template import declared
from ..state.checkout import Checkout

INIT_SINCE = (1, 7)          # `packer init` and required_plugins
VARIABLES_FILE = ".amis-variables.pkrvars.json"    # in the stage: what the tree sets


def build_variables(image: str, region: str, playbook: str | None, *, source_ami: str,
                    parent_image: str, digest: str, git: Mapping[str, Any], build_time: str,
                    packer_version: str) -> dict[str, str]:
    """The variables the tree offers every template (each gets those it declares)."""
    return {"image": image, "region": region, **({"playbook": playbook} if playbook else {}),
            "source_ami": source_ami, "parent_image": parent_image, "digest": digest,
            "branch": str(git["branch"]), "commit": str(git["commit"]),
            "dirty": str(bool(git["dirty"])).lower(),
            "build_url": str(git.get("build_url") or ""), "build_time": build_time,
            "packer_version": packer_version}



def _no_pkr_vars(name: str, env: Mapping[str, str]) -> None:
    """HCL2 Packer reads PKR_VAR_x as variable x: a value no digest sees."""
    found = sorted(k for k in env if k.startswith("PKR_VAR_"))
    if found:
        raise AmiError(f"image {name}: {found[0]} is set: Packer would read it as variable "
                       f"{found[0][len('PKR_VAR_'):]}, which the image's digest cannot see: "
                       "unset it and set the value under vars: in amis.yaml or in a var file")


def _ansible_env(root: Path, runs: tuple[AnsibleRun, ...]) -> dict[str, str]:
    """Ansible sees only the stage: its ``ansible.cfg`` (or an empty one,
    never the build host's), and roles and collections only from the
    repository's paths (in the stage) and from a folder of the stage that
    Galaxy installs pinned requirements into: ``~/.ansible/roles`` and the
    other default paths play no part."""
    config = next((r.config for r in runs if r.config), None)
    if config is None:
        config = ".amis-ansible.cfg"
        (root / config).write_text("")
    galaxy = {"roles": root / ".amis-galaxy/roles", "collections": root / ".amis-galaxy/collections"}
    for folder in galaxy.values():
        folder.mkdir(parents=True, exist_ok=True)
    roles = [str(galaxy["roles"]), *dict.fromkeys(str(root / p) for r in runs
                                                  for p in r.roles_paths)]
    collections = [str(galaxy["collections"]), *dict.fromkeys(
        str(root / p) for r in runs for p in r.collections_paths)]
    return {"ANSIBLE_CONFIG": str(root / config), "ANSIBLE_ROLES_PATH": ":".join(roles),
            "ANSIBLE_COLLECTIONS_PATH": ":".join(collections),
            "ANSIBLE_COLLECTIONS_PATHS": ":".join(collections)}


@dataclass(frozen=True)
class Invocation:
    root: Path                          # the stage: the repository's inputs
    cwd: Path
    template: Path
    var_files: tuple[Path, ...]
    variables: dict[str, Any]
    env: dict[str, str]
    dropped: tuple[str, ...]            # provisioners the sandbox left out
    only: str | None = None             # the one source of several it builds
    manifest: Mapping[str, str] = field(default_factory=dict)   # the inputs staged: entries
    replaced: frozenset[str] = frozenset()              # inputs the runner rewrote in the stage

    def changed(self) -> list[str]:
        """The staged inputs that changed since they were staged."""
        return stage.changed(self.root, dict(self.manifest), set(self.replaced))

    def argv(self, exe: str, command: str, *options: str) -> list[str]:
        """Packer's command line. The tree's variables go in a var file of the
        stage (mode 0600, the last var file, so they win), never on the
        command line, where ``ps`` shows them to every user of the machine."""
        args = [exe, command, *options, *([f"-only={self.only}"] if self.only else [])]
        for vf in (*self.var_files, self.variables_file()):
            args.append(f"-var-file={vf}")
        return [*args, str(self.template)]

    def variables_file(self) -> Path:
        path = self.root / VARIABLES_FILE
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(dict(sorted(self.variables.items())), f, indent=2)
        return path


@dataclass
class Stager:
    """Hands an image to Packer: its stage, the effective template, the
    variables it declares, an environment for Ansible."""
    graph: Graph
    settings: Settings
    checkout: Checkout
    packers: PackerRunner
    tools: Tools

    @contextmanager
    def prepared(self, name: str, variables: dict[str, Any], *, sandbox: bool,
                 endpoint: str | None, tags: dict[str, str],
                 env: Mapping[str, str]) -> Iterator[Invocation]:
        image = self.graph.images[name]
        inputs = self.checkout.inputs()[name]
        with stage.staged(self.graph.root, self.settings.stage, name,
                          self.checkout.manifest(name)) as root:
            files, dropped = formats.effective(inputs.template, regions=image.regions,
                                               endpoint=endpoint, sandbox=sandbox, tags=tags,
                                               only=image.only)
            for rel, body in files.items():
                if body is None:
                    (root / rel).unlink()
                else:
                    stage.replace_file(root / rel, body)
            path = root / json_name(inputs.template.path)
            if inputs.template.format == "hcl2":
                _no_pkr_vars(name, env)
            self._init(name, root, path, with_tools(env))
            env = with_tools(env)
            # The build host's own ANSIBLE_* settings would change the build unseen.
            env = {k: v for k, v in env.items() if not k.startswith("ANSIBLE_")}
            env.update(_ansible_env(root, inputs.ansible))
            yield Invocation(root=root, cwd=root / image.packer_dir, template=path,
                             var_files=tuple(root / vf for vf in image.var_files),
                             variables=declared(inputs.template, variables, inputs.var_values),
                             env=env, dropped=tuple(dropped), only=image.only,
                             manifest=MappingProxyType(self.checkout.manifest(name)),
                             replaced=frozenset(files))

    def _init(self, name: str, root: Path, path: Path, env: dict[str, str]) -> None:
        """`packer init` for a template with required_plugins, once per digest of
        its files (the plugins it installs are the machine's, not the run's)."""
        template = self.checkout.inputs()[name].template
        if not template.required_plugins or \
                version_tuple(self.packers.version()) < INIT_SINCE:
            return
        manifest = self.checkout.manifest(name)
        digest = hashlib.sha256("".join(f"{f} {manifest[f]}\n" for f in template.files
                                        if f in manifest).encode()).hexdigest()
        done = self.settings.state / "packer-init" / digest
        if done.exists():
            return
        result = self.tools.run([self.packers.executable(), "init", str(path)], cwd=root,
                                env=env)
        if not result.ok:
            problem = result.output.splitlines() or ["(no output)"]
            raise AmiError(f"packer init {template.path} failed: {problem[-1]}", code=FAILED)
        write_atomic(done, f"{template.path}\n".encode(), durable=False)
