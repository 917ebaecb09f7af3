"""Content digests: what an image was built from, independent of mtimes.

As in Buildkite's elastic-ci-stack ``packer.sh``, each input is hashed on
its own and the digest is taken over the sorted ``path  entry`` lines, so
the order files are found in and their modification times never matter;
their contents, executable bits and paths do, and so do the parent's AMI id
and the build settings. An entry is the content's sha256, with ``+x`` after
it for an executable file (the bit git keeps, which decides whether a
script runs). Paths never hold a control character (``files.check_name``),
so each line is one entry.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from .errors import AmiError
from .files import not_regular


EXECUTABLE = "+x"


def entry(sha: str, mode: int) -> str:
    """A manifest entry: the content's sha256, ``+x`` for an executable file."""
    return sha + (EXECUTABLE if mode & stat.S_IXUSR else "")



def file_sha256(path: Path) -> str:
    """The sha256 of a file's content, read in blocks of 1 MB."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class Hasher:
    """Manifest entries of input files (sha256, ``+x`` when executable),
    each hashed once per run even when many images share it. Only regular
    files are read: a FIFO or a device would block or never end."""

    def __init__(self) -> None:
        self._cache: dict[Path, tuple[int, int, int, int, str]] = {}
        self._lock = threading.Lock()

    def file(self, path: Path, shown: str) -> str:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            raise AmiError(f"{shown}: input file disappeared while planning: run again") from None
        except OSError as err:
            raise AmiError(f"{shown}: cannot read ({err.strerror})") from None
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(shown)
        key = (st.st_ino, st.st_mtime_ns, st.st_size, st.st_mode)
        with self._lock:
            hit = self._cache.get(path)
        if hit and hit[:4] == key:
            return hit[4]
        try:
            value = entry(file_sha256(path), st.st_mode)
        except OSError as err:
            raise AmiError(f"{shown}: cannot read ({err.strerror})") from None
        with self._lock:
            self._cache[path] = (*key, value)
        return value

    def manifest(self, root: Path, paths: list[str]) -> dict[str, str]:
        """Repository-relative path -> its entry, sorted by path."""
        return {p: self.file(root / p, p) for p in sorted(paths)}


def image_digest(inputs: dict[str, str], parent_ami: str, settings: dict[str, Any]) -> str:
    lines = [f"{path}  {sha}" for path, sha in sorted(inputs.items())]
    lines.append(f"parent-ami  {parent_ami}")
    lines.append("settings  " + json.dumps(settings, sort_keys=True, separators=(",", ":")))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def source_digest(spec: dict[str, Any], ami: str) -> str:
    text = json.dumps({"spec": spec, "ami": ami}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def changed_inputs(old: dict[str, str], new: dict[str, str]) -> list[str]:
    """Paths added, removed or changed between two manifests, sorted."""
    return sorted(p for p in set(old) | set(new) if old.get(p) != new.get(p))
