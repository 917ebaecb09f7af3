"""The bucket, as the emulator's S3 keeps it: objects private and
encrypted, conditional writes that lose a race say so, one line for the
rest. The same contract holds for the MemoryStore the other tests use."""

from __future__ import annotations

import pytest

from support.project import BUCKET, REGION
from tasks.adapters.aws import AwsSession
from tasks.adapters.fakes import MemoryStore
from tasks.adapters.s3 import Conflict, S3Store
from tasks.core.errors import AmiError
from tasks.core.settings import load_settings


@pytest.fixture
def store(aws, tmp_path, monkeypatch) -> S3Store:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    settings = load_settings(tmp_path, {"AMI_BUCKET": BUCKET, "AWS_ENDPOINT_URL": aws.url})
    aws.make_bucket()
    return S3Store(AwsSession(settings, lambda: aws.url), BUCKET, REGION)


def test_objects_are_private_and_encrypted(store, aws):
    store.put("channels/main/web.json", b"{}")
    store.put("channels/main/web.txt", b"ami-12345678\n", "text/plain")
    for key in ("channels/main/web.json", "channels/main/web.txt"):
        head = aws.s3.head_object(Bucket=BUCKET, Key=key)
        assert head["ServerSideEncryption"] == "AES256", key
        grants = aws.s3.get_object_acl(Bucket=BUCKET, Key=key)["Grants"]
        assert all("URI" not in g["Grantee"] for g in grants), f"{key} is shared: {grants}"


@pytest.mark.parametrize("kind", ["s3", "memory"])
def test_conditional_writes_lose_races_with_a_conflict(request, kind):
    store = request.getfixturevalue("store") if kind == "s3" else MemoryStore()
    etag = store.put("locks/web/d.json", b"a", if_none_match=True)
    with pytest.raises(Conflict):
        store.put("locks/web/d.json", b"b", if_none_match=True)
    with pytest.raises(Conflict):
        store.put("locks/web/d.json", b"b", if_match='"00000000000000000000000000000000"')
    newer = store.put("locks/web/d.json", b"b", if_match=etag)
    assert store.get("locks/web/d.json") == (b"b", newer)
    assert store.listing("locks/") == {"locks/web/d.json": newer}
    store.delete("locks/web/d.json")
    assert store.get("locks/web/d.json") is None
    with pytest.raises(Conflict):
        store.put("locks/web/d.json", b"c", if_match=newer)     # gone meanwhile


def test_an_oversized_object_is_refused_before_it_is_read(store, aws):
    aws.s3.put_object(Bucket=BUCKET, Key="channels/main/web.json", Body=b"x" * ((4 << 20) + 1))
    with pytest.raises(AmiError, match=r"s3://test-amis/channels/main/web.json: \d+ bytes, "
                                       r"more than a record may hold"):
        store.get("channels/main/web.json")


def test_a_missing_bucket_is_one_line(aws, tmp_path, monkeypatch):
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(key, "test")
    settings = load_settings(tmp_path, {"AMI_BUCKET": "no-such-bucket",
                                        "AWS_ENDPOINT_URL": aws.url})
    store = S3Store(AwsSession(settings, lambda: aws.url), "no-such-bucket", REGION)
    with pytest.raises(AmiError, match="bucket s3://no-such-bucket does not exist: create it"):
        store.check()
