"""Records: checked field by field when read, from S3 or from disk."""

from __future__ import annotations

import json
import os

import pytest

from tasks.core.errors import AmiError
from tasks.core.records import Record, save_local

GOOD = {"image": "web", "region": "eu-west-1", "digest": "a" * 64,
        "amis": {"eu-west-1": "ami-0123456789abcdef0", "us-east-1": "ami-12345678"}}
KEY = "s3://b/channels/main/web.json"


@pytest.mark.parametrize("value", ["eu-west-1\\n", "ami-12345678\\n"])
def test_a_trailing_newline_is_not_part_of_an_id(value):
    record = {"image": "web", "region": "eu-west-1", "digest": "a" * 64,
              "amis": {"eu-west-1": "ami-12345678"}}
    if value.startswith("ami-"):
        record["amis"] = {"eu-west-1": value.replace("\\n", "\n")}
    else:
        record["region"] = record["amis"] = None
        record.update(region="eu-west-1\n", amis={"eu-west-1\n": "ami-12345678"})
    with pytest.raises(AmiError):
        Record.from_json(json.dumps(record), "s3://b/k")


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


def test_save_local_keeps_mtime_when_content_is_equal(tmp_path):
    path = tmp_path / "web.json"
    assert save_local(path, b"x") is True
    os.utime(path, (1, 1))
    assert save_local(path, b"x") is False
    assert path.stat().st_mtime == 1
    assert save_local(path, b"y") is True and path.read_bytes() == b"y"
