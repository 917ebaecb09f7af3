"""Local files: atomic writes, one-line errors."""

from __future__ import annotations

import os

import pytest

from tasks.core.errors import AmiError
from tasks.core.files import write_atomic


def test_write_atomic_leaves_old_file_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "web.json"
    path.write_bytes(b"old")

    def crash(*_):
        raise OSError("disk full")
    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(AmiError, match="web.json: cannot write"):
        write_atomic(path, b"new")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["web.json"]
