"""How Packer is handed an image: in the image's stage (exactly its inputs),
from the folder the image says Packer runs in, with the effective template
written where the template is (so ``{{template_dir}}`` is right), its var
files in order, only the variables it reads and only the source it builds."""

from __future__ import annotations

import re

import hashlib
import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from ..adapters import stage
from ..adapters.tools import with_tools
from ..core.errors import AmiError, FAILED
from ..core.text import did_you_mean
from ..core.files import write_atomic
from ..core.versions import satisfies, version_tuple
from ..inputs import formats
from ..inputs.hcl.parse import json_name
from ..inputs.image import AnsibleRun
from ..inputs.template import declared
from .run import Run

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


_INSTEAD = MappingProxyType({
    "templatefile()": "use file()",
    "packer { required_plugins }": "remove the block (1.6 has amazon-ebs built in)",
    "data sources": "give the value as a variable (a var file, or vars: in amis.yaml)",
    "amazon-ebs metadata_options": "remove it (the runner requires IMDSv2 on the build "
                                   "instance and on the AMI itself)",
    "the file provisioner's content": "put the content in a file of the repository and "
                                      "name it with source",
    "a gp3 volume without throughput and iops": "set throughput = 125 and iops = 3000"})


def preflight(run: Run, name: str) -> None:
    """What can be known wrong before a build: regions AWS does not have,
    instance types EC2 does not have, a template this Packer cannot run."""
    _check_regions(run, name)
    _check_instance_types(run, name)
    check_versions(run, name)


_VAR_REF = re.compile(r'^"?\$\{var\.([A-Za-z0-9_-]+)\}"?$|^\{\{\s*user `([^`]+)`\s*\}\}$')


def instance_types(template: Any, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(file, instance type) of each builder, where it is known offline: a
    literal, or a variable given a value (amis.yaml, a var file, a default)."""
    found: list[tuple[str, Any]] = [(doc.path, body.get("instance_type"))
                                    for doc in template.documents for body in _sources(doc.data)
                                    if "instance_type" in body]
    for builder in template.data.get("builders", []) if template.data else []:
        if isinstance(builder, dict) and "instance_type" in builder:
            found.append((template.path, builder["instance_type"]))
    known = []
    for path, value in found:
        if not isinstance(value, str):
            continue
        ref = _VAR_REF.match(value.strip())
        if ref:
            value = values.get(ref.group(1) or ref.group(2))
            if not isinstance(value, str):
                continue
        value = value.strip().strip('"')
        if value and not any(c in value for c in "${}`"):
            known.append((path, value))
    return known


def _sources(data: Any) -> Iterator[dict]:
    """The body of every ``source "type" "name"`` block of an HCL document
    (python-hcl2 gives a list of them, a .pkr.json file a mapping)."""
    blocks = data.get("source") if isinstance(data, dict) else None
    for block in blocks if isinstance(blocks, list) else [blocks]:
        for kinds in block.values() if isinstance(block, dict) else ():
            for body in kinds.values() if isinstance(kinds, dict) else ():
                if isinstance(body, dict):
                    yield body


def _check_instance_types(run: Run, name: str) -> None:
    inputs = run.checkout.inputs()[name]
    values = {**inputs.template.variables, **inputs.var_values, **dict(run.graph.images[name].vars)}
    offered = run.aws.known_instance_types()
    for path, value in instance_types(inputs.template, values):
        if offered and value not in offered:
            raise AmiError(f"image {name}: {path}: instance_type {value!r} is not an EC2 "
                           "instance type" + (did_you_mean(value, offered) or
                                              " (botocore's EC2 model has no such type)"))


def _check_regions(run: Run, name: str) -> None:
    known = run.aws.known_regions()
    for region in run.graph.images[name].regions:
        if region not in known:
            raise AmiError(f"{run.graph.file.name}: image {name}: region {region!r} is not an "
                           "AWS region" + (did_you_mean(region, known) or
                                           " (botocore's endpoint data has no such region)"))


def check_versions(run: Run, name: str) -> None:
    """An image whose template needs a newer Packer than the installed one
    stops before it is validated or built, with one line naming the image,
    the template, the block and the version found."""
    template = run.checkout.inputs()[name].template
    if not (template.newer or template.required_version):
        return
    version = run.packers.version()
    for path, what in template.newer:
        if version_tuple(version) < INIT_SINCE:
            raise AmiError(f"image {name}: {path}: {what} needs Packer 1.7 or newer; found "
                           f"{version}: upgrade Packer, or {_INSTEAD.get(what, 'remove it')}")
    if template.required_version and not satisfies(version, template.required_version):
        raise AmiError(f"image {name}: {template.path}: packer {{ required_version = "
                       f"\"{template.required_version}\" }} is not met by Packer {version}: "
                       "install a Packer that meets it")


def _init(run: Run, name: str, root: Path, path: Path, env: dict[str, str]) -> None:
    """`packer init` for a template with required_plugins, once per digest of
    its files (the plugins it installs are the machine's, not the run's)."""
    template = run.checkout.inputs()[name].template
    if not template.required_plugins or version_tuple(run.packers.version()) < INIT_SINCE:
        return
    manifest = run.checkout.manifest(name)
    digest = hashlib.sha256("".join(f"{f} {manifest[f]}\n" for f in template.files
                                    if f in manifest).encode()).hexdigest()
    done = run.settings.state / "packer-init" / digest
    if done.exists():
        return
    result = subprocess.run([run.packers.executable(), "init", str(path)], cwd=root, env=env,
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        problem = (result.stdout + result.stderr).strip().splitlines() or ["(no output)"]
        raise AmiError(f"packer init {template.path} failed: {problem[-1]}", code=FAILED)
    write_atomic(done, f"{template.path}\n".encode(), durable=False)


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
    variables: dict[str, str]
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


@contextmanager
def prepared(run: Run, name: str, variables: dict[str, str], *, sandbox: bool,
             endpoint: str | None, tags: dict[str, str],
             env: Mapping[str, str]) -> Iterator[Invocation]:
    image = run.graph.images[name]
    inputs = run.checkout.inputs()[name]
    with stage.staged(run.graph.root, run.settings.stage, name,
                      run.checkout.manifest(name)) as root:
        files, dropped = formats.effective(inputs.template, regions=image.regions,
                                           endpoint=endpoint, sandbox=sandbox, tags=tags)
        for rel, body in files.items():
            if body is None:
                (root / rel).unlink()
            else:
                stage.replace_file(root / rel, body)
        path = root / json_name(inputs.template.path)
        if inputs.template.format == "hcl2":
            _no_pkr_vars(name, env)
        _init(run, name, root, path, with_tools(env))
        env = with_tools(env)
        # The build host's own ANSIBLE_* settings would change the build unseen.
        env = {k: v for k, v in env.items() if not k.startswith("ANSIBLE_")}
        env.update(_ansible_env(root, inputs.ansible))
        yield Invocation(root=root, cwd=root / image.packer_dir, template=path,
                         var_files=tuple(root / vf for vf in image.var_files),
                         variables=declared(inputs.template, variables, inputs.var_values), env=env,
                         dropped=tuple(dropped), only=image.only,
                         manifest=MappingProxyType(run.checkout.manifest(name)),
                         replaced=frozenset(files))
