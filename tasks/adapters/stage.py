"""A staged copy of the repository that holds exactly an image's inputs, at
their repository paths: Packer (validate and build) runs there, so a file
the walk missed is absent and the build fails loudly with "no such file"
instead of reading something nobody hashed. The same idea as Bazel's and
Nix's sandboxes.

Files are hard links (copies across file systems), so staging costs a
link per input. Each staged file is checked against the hash the digest
was computed from: an input edited between planning and staging is an
error, not a build of something else.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.digest import Hasher
from ..core.errors import AmiError


def _link(src: Path, dst: Path) -> bool:
    """Hard-link (True) or, across file systems, copy (False)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copy2(src, dst)
        return False


@contextmanager
def staged(root: Path, area: Path, name: str, manifest: dict[str, str],
           hasher: Hasher) -> Iterator[Path]:
    """A fresh folder under ``area`` holding the files of ``manifest`` (path ->
    sha256), removed afterwards."""
    stage = area / f"{name}-{uuid.uuid4().hex[:8]}"
    try:
        stage.mkdir(parents=True)
        for rel, sha in manifest.items():
            dst = stage / rel
            # A link is the original's inode: checking the original (its hash is
            # cached while its size and mtime stay) checks the link.
            checked = root / rel if _link(root / rel, dst) else dst
            if hasher.file(checked, rel) != sha:
                raise AmiError(f"{rel}: changed since the build was planned: run again")
    except OSError as err:
        shutil.rmtree(stage, ignore_errors=True)
        raise AmiError(f"{area}: cannot stage the inputs of {name} ({err.strerror}): check "
                       "the disk and the folder's permissions") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def replace_file(path: Path, body: bytes) -> None:
    """Write a staged file without touching the original it may be linked to."""
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
