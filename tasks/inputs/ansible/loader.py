"""Ansible's YAML: playbooks, task files, role metadata and requirements."""

from __future__ import annotations

from typing import Any, Iterator

import yaml

from ...core.files import load_bounded, read_text, yaml_error
from ..repo import Repo


class Unsafe(str):
    """A ``!unsafe`` value: Ansible never templates it."""


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):     # libyaml when built with it
    """Ansible YAML: ``!vault`` and ``!unsafe`` values read as plain values
    (``!unsafe`` ones marked as such)."""


def _tagged(loader: Any, suffix: str, node: Any) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return None
    value = loader.construct_scalar(node)
    return Unsafe(value) if suffix == "unsafe" else value


class Positioned(dict):
    """A mapping as a YAML file writes it, with the lines it spans (a task's
    problem is named there)."""
    line = 0
    end = 0


def _positioned(loader: Any, node: Any) -> Iterator[Positioned]:
    data = Positioned()
    # A block mapping ends where what follows it starts (column 0 of the next
    # task's line); a flow mapping ({...}) on the line it closes.
    end = node.end_mark.line + (1 if node.end_mark.column else 0)
    data.line, data.end = node.start_mark.line + 1, max(end, node.start_mark.line + 1)
    yield data                          # first, as SafeLoader does: aliases may refer to it
    data.update(loader.construct_mapping(node))


_Loader.add_multi_constructor("!", _tagged)
_Loader.add_constructor("tag:yaml.org,2002:map", _positioned)


def load(repo: Repo, rel: str, what: str, unparsable: bool = False) -> Any:
    """The file's data. ``unparsable``: a file that is not YAML is None,
    not an error; YAML no walk could finish is refused either way."""
    text = read_text(repo.path(rel), what, rel)
    try:
        return load_bounded(text, _Loader, rel)
    except yaml.YAMLError as err:
        if unparsable:
            return None
        raise yaml_error(err, rel) from None
