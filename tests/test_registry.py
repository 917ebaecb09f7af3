"""Records: validation that names the object, atomic local writes."""

from __future__ import annotations

import json
import os

import pytest

from tasks.core.errors import AmiError
from tasks.core.records import Record, save_local
from tasks.core.files import write_atomic

GOOD = {"image": "web", "region": "eu-west-1", "digest": "a" * 64,
        "amis": {"eu-west-1": "ami-0123456789abcdef0", "us-east-1": "ami-12345678"}}
KEY = "s3://b/channels/main/web.json"


def test_round_trip():
    record = Record.from_json(json.dumps(GOOD), KEY)
    assert record.ami == "ami-0123456789abcdef0"
    assert Record.from_json(record.to_json(), KEY) == record


def test_unknown_fields_are_ignored_for_forward_compatibility():
    assert Record.from_json(json.dumps({**GOOD, "later": 1}), KEY).image == "web"


@pytest.mark.parametrize("body, expected", [
    ("{not json", "not valid JSON"),
    ("[]", "must be a JSON object"),
    (json.dumps({k: v for k, v in GOOD.items() if k != "digest"}), "record lacks digest"),
    (json.dumps({**GOOD, "amis": {"eu-west-1": "ami-xyz"}}), "'ami-xyz' is not an AMI id"),
    (json.dumps({**GOOD, "amis": {"eu-west-1": "ami-12345678; rm -rf /"}}), "is not an AMI id"),
    (json.dumps({**GOOD, "amis": {"us-east-1": "ami-12345678"}}), "no AMI for its region"),
    (json.dumps({**GOOD, "image": "../x"}), "invalid image name"),
    (json.dumps({**GOOD, "digest": "abc"}), "digest is not a sha256"),
])
def test_bad_records_name_the_key(body, expected):
    with pytest.raises(AmiError) as info:
        Record.from_json(body, KEY)
    assert str(info.value).startswith(KEY + ": ") and expected in str(info.value)


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


def test_save_local_keeps_mtime_when_content_is_equal(tmp_path):
    path = tmp_path / "web.json"
    assert save_local(path, b"x") is True
    os.utime(path, (1, 1))
    assert save_local(path, b"x") is False
    assert path.stat().st_mtime == 1
    assert save_local(path, b"y") is True and path.read_bytes() == b"y"


@pytest.mark.parametrize("code, hint", [
    ("AccessDenied", "grant the build role access (see README, IAM policy)"),
    ("NoSuchBucket", "create the bucket or fix AMI_BUCKET"),
])
def test_aws_errors_become_one_line_with_what_to_do(code, hint):
    from botocore.exceptions import ClientError

    from tasks.adapters.aws import explain

    err = ClientError({"Error": {"Code": code, "Message": "nope"}}, "GetObject")
    message = str(explain(err, "reading s3://b/channels/main/web.json"))
    assert message == f"reading s3://b/channels/main/web.json: {code}: nope: {hint}"
