"""AMI_SIGNING_KEY=file:<path> and verify --key: only a key file is read."""

from __future__ import annotations

import os

import pytest

from tasks.adapters import signing
from tasks.adapters.fakes import FakeKms
from tasks.core.errors import AmiError


@pytest.mark.parametrize("where", ["/dev/zero", "fifo", "big.pem"])
def test_a_key_path_that_is_not_a_key_file_is_one_line_at_once(tmp_path, where):
    if where == "fifo":
        os.mkfifo(tmp_path / "fifo")            # opened blocking, it would wait for a writer
    if where == "big.pem":
        (tmp_path / "big.pem").write_bytes(b"-" * (signing.MAX_KEY_BYTES + 1))
    path = where if where.startswith("/") else str(tmp_path / where)
    for read in (lambda: signing.signer(f"file:{path}", tmp_path, FakeKms()),
                 lambda: signing.public_key(f"file:{path}", tmp_path, FakeKms())):
        with pytest.raises(AmiError) as info:
            read()
        assert str(info.value) == f"AMI_SIGNING_KEY=file:{path}: {path} is not a key file " \
            "(a regular file under 64 KB): name the PEM key file"
