"""Packer's JSON templates (the legacy format): read one, resolve its
``{{...}}`` template actions as far as they are known before the build,
and write the copy Packer gets."""

from __future__ import annotations

import json
import posixpath
import re
from typing import Any

from ..core.errors import AmiError
from ..core.files import json_object, json_value, read_text
from .kinds import EBS_BUILDERS, NEEDS_COMMUNICATOR, NEWER_EBS_FIELDS, PACKER_VERSION_CALL
from .repo import Repo
from .template import Block, Template

_ACTION = re.compile(r"\{\{(.*?)\}\}", re.S)
_USER = re.compile(r"^\s*user\s+[`\"]([^`\"]+)[`\"]\s*$")


def load(repo: Repo, path: str, image: str) -> Template:
    """A JSON template (``*.json``)."""
    where = f"{path} (image {image})"
    data = json_object(read_text(repo.path(path), "template", where), where, "a JSON template")
    variables = data.get("variables") or {}
    if not isinstance(variables, dict):
        raise AmiError(f"{where}: 'variables' must be an object")
    blocks: list[Block] = []
    for kind, key in (("builder", "builders"), ("provisioner", "provisioners"),
                      ("post-processor", "post-processors")):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise AmiError(f"{where}: '{key}' must be a list")
        flat = []
        for item in items:     # a post-processor entry may be a sequence of them
            flat += item if kind == "post-processor" and isinstance(item, list) else [item]
        for i, item in enumerate(flat, 1):
            if isinstance(item, str):
                item = {"type": item}
            if not isinstance(item, dict) or not isinstance(item.get("type"), str):
                raise AmiError(f"{where}: {kind} {i} has no 'type'")
            names = tuple(b.name for b in blocks if b.kind == "builder")
            blocks.append(Block(kind, i, item["type"], item,
                                name=str(item.get("name") or item["type"]),
                                sources=None if kind == "builder" else runs_for(item, names)))
    if not any(b.kind == "builder" and b.type in EBS_BUILDERS for b in blocks):
        raise AmiError(f"{where}: no amazon-ebs builder: image {image} needs one")
    sensitive = data.get("sensitive-variables") or []
    return Template(path=path, format="json", files=(path,),
                    dir=posixpath.dirname(path) or ".",
                    variables={k: v if isinstance(v, str) else None for k, v in variables.items()},
                    required=tuple(k for k, v in variables.items() if v is None),
                    sensitive=tuple(s for s in sensitive if isinstance(s, str)),
                    blocks=tuple(blocks), data=data, newer=tuple(_newer(path, blocks)))


def _newer(path: str, blocks: list[Block]) -> list[tuple[str, str]]:
    """(file, what) of each thing in an amazon-ebs builder that Packer 1.6.6
    cannot run, as HCL2's ``shape`` finds them."""
    found: list[tuple[str, str]] = []
    for block in blocks:
        if block.kind != "builder" or block.type != "amazon-ebs":
            continue
        found += [(path, f"amazon-ebs {f}") for f in NEWER_EBS_FIELDS if f in block.config]
        for key in ("launch_block_device_mappings", "ami_block_device_mappings"):
            volumes = block.config.get(key)
            for volume in volumes if isinstance(volumes, list) else []:
                if isinstance(volume, dict) and volume.get("volume_type") == "gp3" and not (
                        "throughput" in volume and "iops" in volume):
                    found.append((path, "a gp3 volume without throughput and iops"))
        if PACKER_VERSION_CALL.search(json.dumps(block.config)):
            found.append((path, "{{packer_version}}"))
    return list(dict.fromkeys(found))


def runs_for(item: Any, builders: tuple[str, ...]) -> tuple[str, ...]:
    """The builders a provisioner or post-processor runs for: ``only`` and
    ``except`` name builders (all of them when neither is a list of names)."""
    if not isinstance(item, dict):
        return builders
    only, excepted = item.get("only"), item.get("except")
    chosen = builders
    if isinstance(only, list) and all(isinstance(n, str) for n in only):
        chosen = tuple(b for b in chosen if b in only)
    if isinstance(excepted, list) and all(isinstance(n, str) for n in excepted):
        chosen = tuple(b for b in chosen if b not in excepted)
    return chosen


def var_file_data(repo: Repo, path: str) -> dict[str, Any]:
    """A JSON var file, read."""
    try:
        data = json_value(repo.path(path).read_text(encoding="utf-8"), path)
    except (OSError, UnicodeDecodeError) as err:
        raise AmiError(f"{path}: cannot read the var file ({err}): fix it") from None
    if not isinstance(data, dict):
        raise AmiError(f"{path}: a var file must be a JSON object of variable values")
    return data


def var_file_values(repo: Repo, path: str) -> dict[str, str | None]:
    """A JSON var file's values; None for a value that is not a string. A
    null is the empty string, as Packer 1.6.6 renders it."""
    return {k: "" if v is None else v if isinstance(v, str) else None
            for k, v in var_file_data(repo, path).items()}


def resolve(value: str, template_dir: str, cwd: str,
            values: dict[str, str | None]) -> tuple[str | None, str, str]:
    """(the text with every action filled in, or None; a glob with ``*`` for
    what is unknown; why it is unknown). ``{{template_dir}}`` and ``{{pwd}}``
    become ``template_dir`` and ``cwd``; ``{{user `x`}}`` comes from ``values``."""
    text, glob, unknown = [], [], []
    pos = 0
    for m in _ACTION.finditer(value):
        text.append(value[pos:m.start()])
        glob.append(value[pos:m.start()])
        pos = m.end()
        action = m.group(1).strip()
        user = _USER.match(action)
        if action == "template_dir":
            filled: str | None = template_dir
        elif action == "pwd":
            filled = cwd
        elif user:
            filled = values.get(user.group(1))
            if filled is None:
                known = user.group(1) in values
                unknown.append(f"user variable {user.group(1)} " +
                               ("is only known during the build" if known else
                                "is not declared"))
            elif "{{" in filled:
                filled = None
                unknown.append(f"user variable {user.group(1)} is a template itself")
        else:
            filled = None
            unknown.append(f"{{{{{action}}}}} is only known during the build")
        text.append(filled if filled is not None else "")
        glob.append(filled if filled is not None else "*")
    text.append(value[pos:])
    glob.append(value[pos:])
    return ("".join(text) if not unknown else None), "".join(glob), "; ".join(unknown)


def effective(template: Template, *, regions: tuple[str, ...], endpoint: str | None,
              sandbox: bool, tags: dict[str, str],
              only: str | None = None) -> tuple[dict[str, bytes | None], list[str]]:
    """The template as Packer gets it (see ``formats.effective``)."""
    data = json.loads(json.dumps(template.data))
    for builder in data.get("builders") or []:
        if not isinstance(builder, dict) or builder.get("type") not in EBS_BUILDERS:
            continue
        if len(regions) > 1:
            builder["ami_regions"] = list(regions[1:])
        if endpoint:
            builder["custom_endpoint_ec2"] = endpoint
            builder["skip_region_validation"] = True
        for key in ("tags", "snapshot_tags"):
            if isinstance(builder.get(key), dict) or key not in builder:
                builder[key] = {**(builder.get(key) or {}), **tags}
        if sandbox:
            builder["communicator"] = "none"
    dropped = []
    builders = tuple(str(b.get("name") or b.get("type")) for b in data.get("builders") or []
                     if isinstance(b, dict))
    kept = []
    for i, raw in enumerate(data.get("provisioners") or [], 1):
        kind = raw if isinstance(raw, str) else raw.get("type") if isinstance(raw, dict) else None
        if only and only not in runs_for(raw, builders):
            continue                # -only skips it: its files are not staged
        if sandbox and kind in NEEDS_COMMUNICATOR:
            dropped.append(f"provisioner {i} ({kind})")
        else:
            kept.append(raw)
    if "provisioners" in data:
        data["provisioners"] = kept
    return {template.path: (json.dumps(data, indent=2) + "\n").encode()}, dropped
