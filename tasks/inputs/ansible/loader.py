"""Ansible's YAML: playbooks, task files, role metadata and requirements."""

from __future__ import annotations

from typing import Any

import yaml

from ...core.files import read_text, yaml_error
from ..repo import Repo


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):     # libyaml when built with it
    """Ansible YAML: ``!vault`` and ``!unsafe`` values read as plain values."""


_Loader.add_multi_constructor("!", lambda loader, _suffix, node: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode) else None))


def load(repo: Repo, rel: str, what: str) -> Any:
    text = read_text(repo.path(rel), what, rel)
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as err:
        raise yaml_error(err, rel) from None
