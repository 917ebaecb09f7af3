"""The shape of an HCL2 configuration: its variables, locals, sources,
build blocks (provisioners, post-processors) and ``packer`` block, read
from either syntax into one form."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Iterator

from ...core.errors import AmiError
from ..kinds import NEWER_EBS_FIELDS, PACKER_VERSION_CALL
from .dynamic import Dynamic, spec
from .narrow import applies
from .parse import Document
from .syntax import is_template, literal, texts, to_hcl_form, unquote

_ENV_CALL = re.compile(r"\benv\s*\(")


def labelled(node: Any) -> Iterator[tuple[str, Any]]:
    """(label, body) pairs of a block map, in either syntax."""
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, dict):
            for key, body in item.items():
                if key != "__is_block__":
                    yield key.strip('"'), body


def bodies(node: Any) -> Iterator[dict]:
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, dict):
            yield item


def _config(document: Document, body: Any) -> dict:
    body = body[0] if isinstance(body, list) and len(body) == 1 else body
    if not isinstance(body, dict):
        return {}
    body = {k: v for k, v in body.items() if k != "__is_block__"}
    return to_hcl_form(body) if document.syntax == "json" else body


def _configs(document: Document, body: Any) -> Iterator[dict]:
    """Each body of a block: in JSON syntax one label may hold a list of them."""
    for item in body if isinstance(body, list) and len(body) > 1 else [body]:
        yield _config(document, item)


@dataclass
class Shape:
    variables: dict[str, str | None]
    required: list[str]                               # variables with no default
    sensitive: list[str]
    secrets: list[str]                                # strings in sensitive list/map defaults
    locals: dict[str, Any]
    sources: list[tuple[str, str, dict]]              # (type, name, config)
    # (type, config, overrides, the sources it runs for), in order
    provisioners: list[tuple[str, dict, dict, tuple[str, ...]]]
    post_processors: list[tuple[str, dict, tuple[str, ...]]]
    required_version: str | None
    newer: list[tuple[str, str]]                      # (file, what) that needs Packer 1.7+
    dynamic: list[tuple[Dynamic, tuple[str, ...]]]    # dynamic provisioners, post-processors
    builds: list[tuple[str, ...]]                     # each build block's sources (type.name)


def shape(documents: list[Document]) -> Shape:
    """The configuration's blocks, file by file, in Packer's order."""
    s = Shape({}, [], [], [], {}, [], [], [], None, [], [], [])
    for doc in documents:
        if "templatefile(" in json.dumps(doc.data):
            s.newer.append((doc.path, "templatefile()"))
        if doc.data.get("data"):
            s.newer.append((doc.path, "data sources"))
    for doc in documents:
        for name, body in labelled(doc.data.get("variable", [])):
            _variable(s, doc, name, body)
        for body in bodies(doc.data.get("locals", [])):
            s.locals.update(_config(doc, body))
        for kind, body in labelled(doc.data.get("source", [])):
            _sources(s, doc, kind, body)
        for build in bodies(doc.data.get("build", [])):
            _build(s, doc, build)
        for packer in bodies(doc.data.get("packer", [])):
            _packer(s, doc, packer)
    return s


def _variable(s: Shape, doc: Document, name: str, body: Any) -> None:
    cfg = _config(doc, body)
    default = cfg.get("default")
    s.variables[name] = literal(default)
    if "default" not in cfg:
        s.required.append(name)
    if cfg.get("sensitive") in (True, "true", '"true"'):
        s.sensitive.append(name)
        if isinstance(default, (list, dict)):
            s.secrets += _leaves(default)
    # A default that reads the environment anywhere (in a list, a map, a call,
    # try()) is known only during the build: kept as its text, to be declared.
    read = " ".join(unquote(t) if is_template(t) else t for t in texts(default))
    if _ENV_CALL.search(read):
        s.variables[name] = read


def _sources(s: Shape, doc: Document, kind: str, body: Any) -> None:
    for name, cfg in labelled(body):
        if not isinstance(cfg, (dict, list)):
            raise AmiError(f"{doc.path}: source \"{kind}\" needs a type and a name: "
                           f"source \"{kind}\" \"NAME\" {{ ... }}")
        for c in _configs(doc, cfg):
            s.sources.append((kind, name, c))
            _newer_fields(s, doc, kind, c)


def _newer_fields(s: Shape, doc: Document, kind: str, cfg: dict) -> None:
    if kind != "amazon-ebs":
        return
    s.newer += [(doc.path, f"amazon-ebs {f}") for f in NEWER_EBS_FIELDS if f in cfg]
    if PACKER_VERSION_CALL.search(json.dumps(cfg)):
        s.newer.append((doc.path, "{{packer_version}}"))
    for key in ("launch_block_device_mappings", "ami_block_device_mappings"):
        for volume in bodies(cfg.get(key, [])):
            if literal(volume.get("volume_type")) == "gp3" and not (
                    "throughput" in volume and "iops" in volume):
                s.newer.append((doc.path, "a gp3 volume without throughput and iops"))


def _build(s: Shape, doc: Document, build: dict) -> None:
    named = [literal(x) or "" for x in _listish(to_hcl_form(build.get("sources", []))
                                                if doc.syntax == "json" else
                                                build.get("sources", []))]
    named += [label for label, _ in labelled(build.get("source", []))]
    sources = tuple(sorted({n.removeprefix("source.") for n in named if n}))
    s.builds.append(sources)
    # build { source "amazon-ebs.x" { ... } } sets more of a source's fields
    for label, body in labelled(build.get("source", [])):
        kind, _, name = label.removeprefix("source.").partition(".")
        for c in _configs(doc, body):
            s.sources.append((kind, name, c))
            _newer_fields(s, doc, kind, c)
    for kind, body in labelled(build.get("provisioner", [])):
        for cfg in _configs(doc, body):
            if kind == "file" and "content" in cfg:
                s.newer.append((doc.path, "the file provisioner's content"))
            overrides = cfg.pop("override", None)
            overrides = overrides if isinstance(overrides, dict) else {}
            s.provisioners.append((kind, cfg, {k.strip('"'): v for k, v in overrides.items()
                                               if isinstance(v, dict)}, applies(cfg, sources)))
    for kind, body in labelled(build.get("post-processor", [])):
        s.post_processors += [(kind, c, applies(c, sources)) for c in _configs(doc, body)]
    for block, body in labelled(build.get("dynamic", [])):
        if block not in ("provisioner", "post-processor"):
            raise AmiError(f'{doc.path}: dynamic "{block}" in a build block is not supported: '
                           f"write the {block} blocks out")
        s.dynamic += [(spec(doc.path, block, c), sources) for c in _configs(doc, body)]
    for group in bodies(build.get("post-processors", [])):
        if group.get("dynamic"):
            raise AmiError(f'{doc.path}: a dynamic block in post-processors {{ }} is not '
                           "supported: write the post-processors out")
        for kind, body in labelled(group.get("post-processor", [])):
            s.post_processors += [(kind, c, applies(c, sources)) for c in _configs(doc, body)]


def _packer(s: Shape, doc: Document, packer: dict) -> None:
    cfg = _config(doc, packer)
    version = cfg.get("required_version")
    if is_template(version):
        s.required_version = unquote(version)
    if "required_plugins" in packer:
        s.newer.append((doc.path, "packer { required_plugins }"))


def _listish(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _leaves(value: Any) -> list[str]:
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    text = literal(value)
    return [text] if text else []
