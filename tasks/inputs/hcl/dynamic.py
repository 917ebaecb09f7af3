"""``dynamic`` blocks: ``dynamic "provisioner" { labels, for_each, iterator,
content }`` expanded the way Packer expands them, one block per element of
``for_each``, when that collection is known before the build (a literal, or
a local holding one). One that is not known is refused: the files its
blocks name could be anything."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from ...core.errors import AmiError
from .syntax import is_expression, is_template, literal, quote


@dataclass(frozen=True)
class Dynamic:
    """One ``dynamic`` block of a build, as written."""
    block: str          # what it makes: provisioner, post-processor
    type: str           # its label: shell, file, ...
    iterator: str
    for_each: Any
    content: dict


def spec(where: str, block: str, body: dict) -> Dynamic:
    labels = body.get("labels")
    label = literal(labels[0]) if isinstance(labels, list) and len(labels) == 1 else None
    content = body.get("content")
    content = content[0] if isinstance(content, list) and len(content) == 1 else content
    if not label or not isinstance(content, dict) or "for_each" not in body:
        raise AmiError(f'{where}: dynamic "{block}" needs labels = ["TYPE"], for_each and one '
                       "content block")
    iterator = body.get("iterator", block)
    iterator = literal(iterator) if is_template(iterator) else str(iterator)
    return Dynamic(block, label, iterator, body["for_each"],
                   {k: v for k, v in content.items() if k != "__is_block__"})


def expand(where: str, dynamic: Dynamic,
           known: Callable[[Any], Any]) -> list[tuple[str, dict]]:
    """(element key, content with ``ITERATOR.key`` / ``.value`` filled in) for
    each element; ``known`` turns ``local.x`` into the local's value."""
    collection = known(dynamic.for_each)
    if not isinstance(collection, (list, dict)):
        raise AmiError(f'{where}: dynamic "{dynamic.block}" for_each = '
                       f"{_shown(dynamic.for_each)} is not known before the build, so the files "
                       "its blocks name are not either: give for_each a literal list or map, "
                       "or a local holding one")
    items = _elements(collection)
    if items is None:
        raise AmiError(f'{where}: dynamic "{dynamic.block}" for_each holds more than strings, '
                       "so the files its blocks name are not known before the build: give "
                       "for_each a list or map of strings, or write the blocks out")
    out = []
    for key, value in items:
        config = _fill(dynamic.content, dynamic.iterator, key, value)
        if re.search(rf"\b{re.escape(dynamic.iterator)}\.", repr(config)):
            raise AmiError(f'{where}: dynamic "{dynamic.block}" uses {dynamic.iterator} other '
                           f"than as {dynamic.iterator}.key or {dynamic.iterator}.value of a "
                           "string: write the blocks out")
        out.append((key, config))
    return out


def _shown(value: Any) -> str:
    return value[2:-1].strip() if is_expression(value) else str(value)


def _elements(value: list | dict) -> list[tuple[str, str]] | None:
    """(key, value) of each element; None if one is not a string."""
    if isinstance(value, list):
        texts = [literal(v) for v in value]
        return None if None in texts else [(str(i), t) for i, t in enumerate(texts)]
    if isinstance(value, dict):
        pairs = [(literal(k) if is_template(k) else k, literal(v))
                 for k, v in value.items() if k != "__is_block__"]
        return None if any(v is None for _, v in pairs) else sorted(pairs)


def _fill(node: Any, iterator: str, key: str, value: str) -> Any:
    if isinstance(node, dict):
        return {k: _fill(v, iterator, key, value) for k, v in node.items()}
    if isinstance(node, list):
        return [_fill(v, iterator, key, value) for v in node]
    if not isinstance(node, str):
        return node
    whole = {f"${{{iterator}.key}}": key, f"${{{iterator}.value}}": value}
    compact = re.sub(r"\$\{\s*(\S+?)\s*\}", r"${\1}", node) if is_expression(node) else node
    if compact in whole:
        return quote(whole[compact])
    for name, text in (("key", key), ("value", value)):
        node = re.sub(rf"\$\{{\s*{re.escape(iterator)}\.{name}\s*\}}",
                      lambda _m, t=text: quote(t)[1:-1], node)
    return node
