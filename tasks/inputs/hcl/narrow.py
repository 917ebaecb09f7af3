"""What one source of a configuration reads. With ``only:`` an image builds
one source of several (Packer's ``-only``), so only what that source uses
is its input: the files that declare variables, data or the ``packer``
block, the file of its ``source`` block, the build blocks that list it and
their provisioners whose ``only``/``except`` let it through, and the locals
those use, followed from file to file. Anything else cannot change its
image, so a change to it rebuilds nothing (``effective`` leaves it out of
what Packer gets)."""

from __future__ import annotations

import json
import re
from typing import Any

from .parse import Document
from .syntax import literal

_LOCAL_REF = re.compile(r"\blocal\.([A-Za-z_][A-Za-z0-9_-]*)")
_PARTS = ("source", "build", "locals")      # what may belong to other sources alone


def source_name(ref: str) -> str:
    """``source.amazon-ebs.x`` or ``amazon-ebs.x`` as ``amazon-ebs.x``."""
    return ref.strip().strip('"').removeprefix("source.")


def _names(value: Any) -> list[str] | None:
    """A literal list of source names; None when not known before the build."""
    if not isinstance(value, list):
        return None                     # an expression (var.sources): known during the build
    names = [literal(v) if isinstance(v, str) and v.startswith('"') else None for v in value]
    return None if any(n is None for n in names) else [source_name(str(n)) for n in names]


def applies(cfg: dict, build_sources: tuple[str, ...]) -> tuple[str, ...]:
    """The sources a provisioner or post-processor runs for: its build's,
    narrowed by ``only`` and ``except`` (all of the build's when they are
    not known before the build)."""
    chosen = list(build_sources)
    if "only" in cfg and (only := _names(cfg["only"])) is not None:
        chosen = [s for s in chosen if s in only]
    if "except" in cfg and (excepted := _names(cfg["except"])) is not None:
        chosen = [s for s in chosen if s not in excepted]
    return tuple(chosen)


def build_sources(build: dict) -> tuple[str, ...]:
    """The sources one build block lists (``sources = [...]`` and nested
    ``source "..." {}`` blocks), python-hcl2's form."""
    listed = build.get("sources", [])
    named = [source_name(str(literal(x) or "")) for x in
             (listed if isinstance(listed, list) else [listed])]
    for item in build.get("source", []) if isinstance(build.get("source"), list) else []:
        if isinstance(item, dict):
            named += [source_name(k) for k in item if k != "__is_block__"]
    return tuple(sorted({n for n in named if n}))


def _blocks(doc: Document, key: str) -> list[dict]:
    found = doc.data.get(key, [])
    return [b for b in (found if isinstance(found, list) else [found]) if isinstance(b, dict)]


def _is(kind: str, name: str, only: str) -> bool:
    """Whether ``source "kind" "name"`` (python-hcl2 keeps the quotes) is ``only``."""
    return ".".join(label.strip().strip('"') for label in (kind, name)) == only


def _defines(doc: Document, only: str) -> bool:
    """Whether the file holds the ``source`` block of ``only``."""
    return any(isinstance(named, dict) and any(_is(kind, name, only) for name in named
                                               if name != "__is_block__")
               for item in _blocks(doc, "source") for kind, named in item.items())


def _refs(value: Any) -> set[str]:
    return set(_LOCAL_REF.findall(json.dumps(value)))


def _used(doc: Document, only: str) -> tuple[bool, set[str]]:
    """Whether the file holds anything ``only`` uses, apart from locals, and
    the locals that uses."""
    other = set(doc.data) - set(_PARTS) - {"__is_block__"}
    used = bool(other) or _defines(doc, only)
    refs = _refs({k: doc.data[k] for k in other})
    for item in _blocks(doc, "source") if _defines(doc, only) else []:
        refs |= _refs(item)
    for build in _blocks(doc, "build"):
        if only in build_sources(build):
            used = True
            refs |= _refs(narrowed_build(build, only))
    return used, refs


def relevant(documents: list[Document], only: str) -> set[str]:
    """The files of the configuration that source ``only`` reads. A file in
    HCL2's JSON syntax is always one (it is read whole)."""
    chosen: set[str] = set()
    wanted: set[str] = set()
    locals_of = {d.path: {name for block in _blocks(d, "locals") for name in block
                          if name != "__is_block__"} for d in documents}
    for doc in documents:
        if doc.syntax == "json":
            chosen.add(doc.path)
            wanted |= _refs(doc.data)
            continue
        used, refs = _used(doc, only)
        if used:
            chosen.add(doc.path)
            wanted |= refs | _refs(_blocks(doc, "locals"))
    grew = True
    while grew:                 # the locals those use, wherever they are defined
        grew = False
        for doc in documents:
            if doc.path not in chosen and locals_of[doc.path] & wanted:
                chosen.add(doc.path)
                wanted |= _refs(_blocks(doc, "locals"))
                grew = True
    return chosen


def narrowed_build(build: dict, only: str) -> dict:
    """A build block (python-hcl2's form) as ``-only`` runs it: its sources
    just ``only``, and only the provisioners and post-processors it runs."""
    sources = build_sources(build)
    out = dict(build)
    if "sources" in out:
        listed = out["sources"] if isinstance(out["sources"], list) else [out["sources"]]
        out["sources"] = [s for s in listed if source_name(str(literal(s) or "")) == only]
    if isinstance(out.get("source"), list):
        out["source"] = [{k: v for k, v in item.items()
                          if k == "__is_block__" or source_name(k) == only}
                         for item in out["source"] if isinstance(item, dict)]
        out["source"] = [item for item in out["source"] if set(item) - {"__is_block__"}]
        if not out["source"]:
            del out["source"]
    for key in ("provisioner", "post-processor"):
        if isinstance(out.get(key), list):
            kept = []
            for item in out[key]:
                bodies = [b for k, b in item.items() if k != "__is_block__"] \
                    if isinstance(item, dict) else []
                if all(isinstance(b, dict) and only in applies(b, sources) for b in bodies):
                    kept.append({k: ({f: v for f, v in b.items() if f not in ("only", "except")}
                                     if isinstance(b, dict) else b) for k, b in item.items()})
            out[key] = kept
            if not kept:
                del out[key]
    return out


def narrow_file(data: dict, only: str) -> None:
    """A file (python-hcl2's form) as ``-only`` uses it, in place: only the
    ``source`` block of ``only``, and only the build blocks that list it,
    narrowed (``narrowed_build``)."""
    sources = []
    for item in data.get("source", []) if isinstance(data.get("source"), list) else []:
        kept = {kind: {name: body for name, body in named.items()
                       if name == "__is_block__" or _is(kind, name, only)}
                for kind, named in item.items() if isinstance(named, dict)}
        kept = {k: v for k, v in kept.items() if set(v) - {"__is_block__"}}
        if kept:
            sources.append(kept)
    if "source" in data:
        data["source"] = sources
        if not sources:
            del data["source"]
    if isinstance(data.get("build"), list):
        data["build"] = [narrowed_build(b, only) for b in data["build"]
                         if isinstance(b, dict) and only in build_sources(b)]
        if not data["build"]:
            del data["build"]
