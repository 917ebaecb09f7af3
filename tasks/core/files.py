"""Local files: reading text, JSON and YAML with one-line errors, writing
atomically, and the messages for files that cannot be inputs."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Hashable

import yaml

from .errors import AmiError


def read_text(path: Path, what: str, shown: object) -> str:
    """A text file's content; a missing or unreadable one is one line naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise AmiError(f"{what} {shown}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise AmiError(f"{what} {shown}: cannot read ({err})") from None


def json_value(text: str, shown: object) -> Any:
    """A JSON document, nested no deeper than YAML may be (MAX_YAML_DEPTH):
    what no walk could finish is one line, never a RecursionError."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise AmiError(f"{shown}: not valid JSON ({err}): fix it") from None
    except RecursionError:
        data = None
        depth = MAX_YAML_DEPTH + 1
    else:
        depth = _depth(data)
    if depth > MAX_YAML_DEPTH:
        raise AmiError(f"{shown}: nested more than {MAX_YAML_DEPTH} deep: flatten it")
    return data


def _depth(data: Any) -> int:
    deepest, level = 0, [data]
    while level:
        deepest += 1
        if deepest > MAX_YAML_DEPTH:
            return deepest
        level = [v for item in level for v in (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ())]
    return deepest


def json_object(text: str, shown: object, what: str) -> dict:
    """A JSON document that must be an object; anything else is one line."""
    data = json_value(text, shown)
    if not isinstance(data, dict):
        raise AmiError(f"{shown}: {what} must be an object")
    return data


def yaml_error(err: Exception, shown: object) -> AmiError:
    """A YAML parse error as one line naming the file and line."""
    mark = getattr(err, "problem_mark", None)
    line = f" line {mark.line + 1}" if mark else ""
    problem = getattr(err, "problem", None) or "invalid YAML"
    return AmiError(f"{shown}:{line}: {problem}: fix the YAML syntax")


class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML keeps the last of two equal keys; a duplicate image must be an error."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            raise AmiError(f"a key that is a list or mapping (line {key_node.start_mark.line + 1}): "
                           "keys are names")
        if key in seen:
            raise AmiError(f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


# Far beyond any real playbook or amis.yaml; what is past them is refused
# before anything walks it (an alias bomb, a loop of aliases).
MAX_YAML_DEPTH = 100
MAX_YAML_VALUES = 1_000_000


def load_bounded(text: str, loader: type, shown: object) -> Any:
    """``yaml.load`` with ``loader``, refusing what no walk could finish:
    nesting past :data:`MAX_YAML_DEPTH`, an alias that contains itself, or
    aliases that expand to more than :data:`MAX_YAML_VALUES` values."""
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None
        _check_bounds(node, shown)
        return parser.construct_document(node)
    finally:
        parser.dispose()


def _check_bounds(root: yaml.Node, shown: object) -> None:
    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [n for pair in node.value for n in pair]
        return list(node.value) if isinstance(node, yaml.SequenceNode) else []

    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        line = node.start_mark.line + 1
        if finished:
            on_path.discard(key)
            below = children(node)
            size[key] = 1 + sum(size[id(n)] for n in below)
            depth[key] = 1 + max((depth[id(n)] for n in below), default=0)
            if depth[key] > MAX_YAML_DEPTH:
                raise AmiError(f"{shown}: line {line}: nested more than {MAX_YAML_DEPTH} deep: "
                               "flatten it")
            if size[key] > MAX_YAML_VALUES:
                raise AmiError(f"{shown}: its aliases (*name) expand to more than "
                               f"{MAX_YAML_VALUES:,} values: write it with fewer aliases")
            continue
        if key in size:
            continue
        if key in on_path:
            raise AmiError(f"{shown}: line {line}: an alias (*name) inside the value it names, "
                           "a loop: remove the alias")
        on_path.add(key)
        stack.append((node, True))
        stack += [(n, False) for n in children(node)]


def load_yaml(path: Path, what: str) -> Any:
    """Parse a YAML file; a missing or malformed file, or a duplicate key, is
    an AmiError naming it."""
    text = read_text(path, what, path)
    try:
        return load_bounded(text, _UniqueKeyLoader, path)
    except AmiError as err:
        raise err if str(err).startswith(f"{path}:") else AmiError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise yaml_error(err, path) from None


def write_atomic(path: Path, data: bytes, durable: bool = True) -> None:
    """Write by temporary file and rename: a crash leaves the old file whole.
    ``durable`` also forces it to disk first (records; not reports)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise AmiError(f"{path.parent}: cannot write ({err.strerror}): check that the folder "
                       "exists and is writable") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise AmiError(f"{path}: cannot write ({err.strerror}): check the disk and "
                       "the folder's permissions") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def not_regular(shown: str) -> AmiError:
    """An input that is a FIFO, socket or device: reading it would block or never end."""
    return AmiError(f"{shown}: not a regular file (a FIFO, socket or device): inputs must "
                    "be regular files: remove it")


def check_regular(shown: str, mode: int) -> None:
    if not stat.S_ISREG(mode):
        raise not_regular(shown)


def check_name(name: str) -> None:
    """A file name that is not valid UTF-8 (Python keeps its bytes as
    surrogates) cannot be written into a record, and one with a control
    character (a newline) reads as two entries to line-based tools: one line
    naming it."""
    if name.isascii() and name.isprintable():
        return
    shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if any("\udc80" <= c <= "\udcff" for c in name):
        raise AmiError(f"{shown}: the file name is not valid UTF-8: rename it")
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise AmiError(f"{shown!r}: the file name has a control character (a newline, a tab): "
                       "rename it")
