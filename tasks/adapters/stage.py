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
import re
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..core.digest import entry, file_sha256
from ..core.errors import AmiError, FAILED

KEPT = ".kept"                 # marks a stage kept after a failure
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
    entry), removed afterwards, except when the work in it fails with an
    AmiError: then it is kept for a look (until the image is staged again),
    and the error says where."""
    for old in area.glob(f"{name}-*/{KEPT}") if area.is_dir() else ():
        _remove(old.parent)
    stage = area / f"{name}-{uuid.uuid4().hex[:8]}"
    try:
        stage.mkdir(parents=True)
        copy = _Copier()
        for rel, want in manifest.items():
            if copy(root / rel, stage / rel) != want:
                raise AmiError(f"{rel}: changed since the build was planned: run again", code=FAILED)
    except OSError as err:
        _remove(stage)
        raise AmiError(f"{area}: cannot stage the inputs of {name} ({err.strerror}): check "
                       "the disk and the folder's permissions", code=FAILED) from None
    except BaseException:
        _remove(stage)
        raise
    try:
        yield stage
    except AmiError as err:
        try:
            (stage / KEPT).write_text("kept after a failed build\n")
        except OSError:
            _remove(stage)
            raise err from None
        where = stage.relative_to(root) if stage.is_relative_to(root) else stage
        # every problem stays its own line; the last says where the stage is
        raise AmiError.of([*err.problems[:-1], f"{err.problems[-1]}; stage kept in {where}/"],
                          err.code) from None
    except BaseException:
        _remove(stage)
        raise
    _remove(stage)


_ON_LINE = re.compile(r"on (\S+) line (\d+)(:?)")
_JSON_KEY = re.compile(r'^\s*"([^"]+)":')      # the generated copy: one attribute a line


def to_user(text: str, stage: Path, root: Path) -> str:
    """Packer's ``on <stage>/<file> line N:`` as the user's own file and line:
    a staged ``.hcl.pkr.json`` copy is mapped back to its ``.pkr.hcl`` by the
    attribute on that line (its k-th mention in the copy is taken to be its
    k-th in the source); any other staged file is the repository's own."""
    def where(match: re.Match) -> str:
        path, number, colon = match.group(1), int(match.group(2)), match.group(3)
        at = path.find(f"{stage.name}/")
        if at < 0:
            return match.group(0)
        rel = path[at + len(stage.name) + 1:]
        if not rel.endswith(".hcl.pkr.json"):
            return f"on {rel} line {number}{colon}"
        source = rel[:-len(".hcl.pkr.json")] + ".pkr.hcl"
        found = _source_line(stage / rel, root / source, number)
        return f"on {source} line {found}{colon}" if found else f"on {source}{colon}"

    return _ON_LINE.sub(where, text)


def _source_line(generated: Path, source: Path, number: int) -> int | None:
    try:
        made = generated.read_text(encoding="utf-8").splitlines()
        written = source.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    if not 0 < number <= len(made):
        return None
    key = _JSON_KEY.match(made[number - 1])
    if key is None:
        return None
    name = key.group(1)
    nth = sum(1 for line in made[:number] if (k := _JSON_KEY.match(line)) and k.group(1) == name)
    pattern = re.compile(rf'^\s*"?{re.escape(name)}"?\s*(=|\{{|")')
    hits = [i + 1 for i, line in enumerate(written) if pattern.match(line)]
    return hits[nth - 1] if len(hits) >= nth else (hits[0] if hits else None)


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
