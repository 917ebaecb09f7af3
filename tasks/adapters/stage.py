"""A staged copy of the repository that holds exactly an image's inputs, at
their repository paths: Packer (validate and build) runs there, so a file
the walk missed is absent and the build fails loudly with "no such file"
instead of reading something nobody hashed. The same idea as Bazel's and
Nix's sandboxes.

The stage is isolated both ways. Each input is copied (a reflink where
the file system has them, so a copy costs no data) and hashed as staged:
an input edited between planning and staging is an error, and an editor
writing in place afterwards (vim on a linked file, VS Code) cannot reach
what Packer reads. Staged files are read-only, and nothing Packer or a
provisioner does in the stage reaches the repository. After the build the
stage is hashed again (:func:`changed`): a build whose inputs changed while
it ran is not published.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.digest import entry, file_sha256
from ..core.errors import AmiError

_FICLONE = 0x40049409          # linux/fs.h: share the source's blocks (btrfs, xfs, ...)
_CHUNK = 1 << 20


class _Copier:
    """Copies inputs into one stage: a reflink while the file system takes
    them, else the bytes, hashed on their way (one read, one write)."""

    def __init__(self) -> None:
        self.reflinks = True
        self.folders: set[Path] = set()

    def __call__(self, src: Path, dst: Path) -> str:
        """Copy ``src`` to ``dst``, read-only with its executable bit; the
        staged copy's entry (sha256, ``+x``)."""
        if dst.parent not in self.folders:
            dst.parent.mkdir(parents=True, exist_ok=True)
            self.folders.add(dst.parent)
        source = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        try:
            mode = os.fstat(source).st_mode
            copy = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                sha = self._reflink(source, copy, dst) or self._bytes(source, copy)
                os.fchmod(copy, mode & 0o555)
            finally:
                os.close(copy)
        finally:
            os.close(source)
        return entry(sha, mode)

    def _reflink(self, source: int, copy: int, dst: Path) -> str | None:
        if not self.reflinks:
            return None
        try:
            fcntl.ioctl(copy, _FICLONE, source)
        except OSError:
            self.reflinks = False         # this file system has none: copy from now on
            return None
        return file_sha256(dst)

    @staticmethod
    def _bytes(source: int, copy: int) -> str:
        digest = hashlib.sha256()
        while block := os.read(source, _CHUNK):
            digest.update(block)
            view = memoryview(block)
            while view:
                view = view[os.write(copy, view):]
        return digest.hexdigest()


@contextmanager
def staged(root: Path, area: Path, name: str, manifest: dict[str, str]) -> Iterator[Path]:
    """A fresh folder under ``area`` holding the files of ``manifest`` (path ->
    entry), removed afterwards."""
    stage = area / f"{name}-{uuid.uuid4().hex[:8]}"
    try:
        stage.mkdir(parents=True)
        copy = _Copier()
        for rel, want in manifest.items():
            if copy(root / rel, stage / rel) != want:
                raise AmiError(f"{rel}: changed since the build was planned: run again")
    except OSError as err:
        _remove(stage)
        raise AmiError(f"{area}: cannot stage the inputs of {name} ({err.strerror}): check "
                       "the disk and the folder's permissions") from None
    except BaseException:
        _remove(stage)
        raise
    try:
        yield stage
    finally:
        _remove(stage)


def changed(stage: Path, manifest: dict[str, str], replaced: set[str]) -> list[str]:
    """The staged inputs that no longer hold what was hashed (the files the
    runner replaced aside): written to, or their mode changed, during the build."""
    out = []
    for rel, want in manifest.items():
        if rel in replaced:
            continue
        path = stage / rel
        try:
            mode = os.lstat(path).st_mode
            now = entry(file_sha256(path), mode) if not os.path.islink(path) else "link"
        except OSError:
            now = "gone"
        if now != want:
            out.append(rel)
    return out


def _remove(stage: Path) -> None:
    # Staged files are read-only, their folders are not: rmtree removes them.
    shutil.rmtree(stage, ignore_errors=True)


def replace_file(path: Path, body: bytes) -> None:
    """Write a staged file (the effective template) in place of the input."""
    path.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
