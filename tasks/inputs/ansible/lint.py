"""Where ansible-lint runs for a playbook and with which settings, found
as ansible-lint itself finds them."""

from __future__ import annotations

import posixpath
from pathlib import Path

from ...core.names import LINT_CONFIG

LINT_CONFIGS = (LINT_CONFIG, ".ansible-lint.yml", ".ansible-lint.yaml", ".config/ansible-lint.yml",
                ".config/ansible-lint.yaml")
LINT_IGNORES = (".ansible-lint-ignore", ".config/ansible-lint-ignore.txt")


def lint_settings(root: Path, playbook: str) -> tuple[str, str | None, str | None]:
    """Where ansible-lint runs for a playbook, as ansible-lint itself looks:
    the nearest folder above the playbook, up to the repository's top, that
    holds its settings (``.ansible-lint``, ``.config/ansible-lint.yml``, ...)
    or its ignore file; the top when none does. Returns (that folder, its
    settings file, its ignore file), repository paths."""
    folder = posixpath.dirname(playbook)
    while True:
        config = next((posixpath.join(folder, n) for n in LINT_CONFIGS
                       if (root / folder / n).is_file()), None)
        ignore = next((posixpath.join(folder, n) for n in LINT_IGNORES
                       if (root / folder / n).is_file()), None)
        if config or ignore or not folder:
            return folder or ".", config and posixpath.normpath(config), \
                ignore and posixpath.normpath(ignore)
        folder = posixpath.dirname(folder)


def lint_files(root: Path, playbooks: list[str]) -> list[str]:
    """The settings and ignore files the playbooks are linted under."""
    found = set()
    for folder in {posixpath.dirname(p) for p in playbooks}:     # one look per folder
        _, config, ignore = lint_settings(root, posixpath.join(folder, "playbook"))
        found |= {f for f in (config, ignore) if f}
    return sorted(found)
