"""The configuration Packer gets: each file of the user's configuration
with what the tree decides filled in, written in HCL2's JSON syntax
(``.pkr.hcl`` files as ``.hcl.pkr.json`` copies), which needs no escaping
of ours."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

from .narrow import narrow_file
from .parse import Document, json_name
from .shape import bodies, labelled
from .syntax import is_expression, is_template, quote, unquote


def _set_tags(cfg: dict, key: str, tags: dict[str, str], syntax: str) -> None:
    existing = cfg.get(key)
    if isinstance(existing, dict):
        for k, v in tags.items():
            existing[k] = v if syntax == "json" else quote(v)
    elif existing is None:
        cfg[key] = dict(tags) if syntax == "json" else {k: quote(v) for k, v in tags.items()}
    else:
        inner = existing[2:-1] if is_expression(existing) else existing
        extra = ", ".join(f"{k} = {quote(v)}" for k, v in tags.items())
        cfg[key] = f"${{merge({inner}, {{{extra}}})}}"


def effective(documents: list[Document], *, regions: tuple[str, ...], endpoint: str | None,
              sandbox: bool, tags: dict[str, str], drop: Callable[[str], bool],
              only: str | None = None) -> tuple[dict[str, bytes | None], list[str]]:
    """Each file as Packer gets it: copy regions, the endpoint, provenance tags
    and, in the sandbox, no communicator and none of the provisioners ``drop``
    says need one. Returns file -> content (None: remove the file; a
    ``.pkr.hcl`` file is replaced by its JSON-syntax copy), and the
    provisioners left out. With ``only``, what ``-only`` would not build is
    left out too (``narrow``): other sources, build blocks without it, and
    the provisioners it skips, whose files are not staged."""
    datas = [copy.deepcopy(doc.data) for doc in documents]
    for doc, data in zip(documents, datas):
        if only and doc.syntax == "hcl":
            narrow_file(data, only)
    added: dict[str, Any] = {}
    if len(regions) > 1:
        added["ami_regions"] = list(regions[1:])
    if endpoint:
        added.update(custom_endpoint_ec2=endpoint, skip_region_validation=True)
    if sandbox:
        added["communicator"] = "none"
    # A source block inside build that sets one of these fields: Packer refuses
    # the same field set twice, so the value goes there instead.
    nested: dict[str, list[tuple[dict, str]]] = {}
    for doc, data in zip(documents, datas):
        for build in bodies(data.get("build", [])):
            for label, body in labelled(build.get("source", [])):
                for cfg in bodies(body):
                    nested.setdefault(label.removeprefix("source."), []).append((cfg, doc.syntax))
    for doc, data in zip(documents, datas):
        for kind, body in labelled(data.get("source", [])):
            if kind != "amazon-ebs":
                continue
            for name, cfgs in labelled(body):
                for cfg in bodies(cfgs):
                    others = nested.get(f"{kind}.{name}", [])
                    for key in [*added, "tags", "snapshot_tags"]:
                        for target, syntax in [o for o in others if key in o[0]] or [(cfg, doc.syntax)]:
                            if key in added:
                                target[key] = _in_syntax(added[key], syntax)
                            else:
                                _set_tags(target, key, tags, syntax)
    out: dict[str, bytes | None] = {}
    dropped: list[str] = []
    counts = {"provisioner": 0, "dynamic": 0}
    for doc, data in zip(documents, datas):
        for build in bodies(data.get("build", [])) if sandbox else []:
            dropped += _leave_out(build, "provisioner", counts, drop, lambda block, _: block)
            dropped += _leave_out(build, "dynamic", counts, drop, lambda block, item: _dynamic_type(
                next(v for k, v in item.items() if k != "__is_block__"))
                if block == "provisioner" else None)
        if doc.syntax == "hcl":
            # Written in HCL2's JSON syntax, which needs no escaping of ours.
            data = _json_syntax(data)
            for variables in bodies(data.get("variable", [])):
                for _, variable in labelled(variables):
                    for spec in bodies(variable):
                        if is_expression(spec.get("type")):
                            spec["type"] = spec["type"][2:-1].strip()   # string, list(string)
            out[doc.path] = None
        out[json_name(doc.path)] = (json.dumps(data, indent=2) + "\n").encode()
    return out, dropped


def _in_syntax(value: Any, syntax: str) -> Any:
    if isinstance(value, list):
        return [_in_syntax(v, syntax) for v in value]
    return quote(value) if isinstance(value, str) and syntax == "hcl" else value


def _leave_out(build: dict, key: str, counts: dict[str, int], drop: Callable[[str], bool],
               kind_of: Callable[[str, dict], str | None]) -> list[str]:
    """Remove from ``build[key]`` the provisioners ``drop`` says need an
    instance; returns their labels, numbered in the configuration's order."""
    if key not in build:
        return []
    kept, out = [], []
    for block, item in _one_by_one(build[key]):
        counts[key] += 1
        kind = kind_of(block, item)
        if kind is not None and drop(kind):
            out.append(f"{'dynamic provisioner' if key == 'dynamic' else 'provisioner'} "
                       f"{counts[key]} ({kind})")
        else:
            kept.append(item)
    if kept:
        build[key] = kept
    else:
        del build[key]
    return out


def _dynamic_type(body: Any) -> str:
    body = body[0] if isinstance(body, list) and len(body) == 1 else body
    labels = body.get("labels") if isinstance(body, dict) else None
    return str(labels[0]).strip('"') if isinstance(labels, list) and labels else "?"


def _one_by_one(provisioners: Any) -> list[tuple[str, Any]]:
    """(type, block) for each provisioner, in order: JSON syntax may put
    several types in one object, or several bodies under one type."""
    out: list[tuple[str, Any]] = []
    for item in provisioners if isinstance(provisioners, list) else [provisioners]:
        if not isinstance(item, dict):
            out.append(("?", item))
            continue
        marker = {"__is_block__": True} if "__is_block__" in item else {}
        for label, body in item.items():
            if label == "__is_block__":
                continue
            bodies = body if isinstance(body, list) and len(body) > 1 else [body]
            out += [(label.strip('"'), {label: b, **marker}) for b in bodies]
    return out


def _json_syntax(node: Any) -> Any:
    """python-hcl2's form (quoted templates, ``${expr}``) as HCL2 JSON syntax."""
    if isinstance(node, dict):
        return {(unquote(k) if is_template(k) else k): _json_syntax(v)
                for k, v in node.items() if k != "__is_block__"}
    if isinstance(node, list):
        return [_json_syntax(v) for v in node]
    return unquote(node) if is_template(node) else node
