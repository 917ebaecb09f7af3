"""Ansible's YAML: playbooks, task files, role metadata and requirements."""

from __future__ import annotations

from typing import Any

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


_Loader.add_multi_constructor("!", _tagged)


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
