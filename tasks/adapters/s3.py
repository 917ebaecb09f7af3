"""Objects in the S3 bucket, the one place every laptop and agent shares.

Objects are private (no ACL) and encrypted with SSE-S3, whose ETag is the
MD5 of the body. Writes may be conditional (``IfMatch`` an ETag,
``IfNoneMatch='*'``): losing such a race raises :class:`Conflict` instead
of overwriting. :class:`~tasks.adapters.fakes.MemoryStore` is the same
thing in a dict, for tests.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from ..core.errors import AmiError, FAILED
from ..core.records import check_size
from ..core.settings import require_bucket
from .aws import AwsSession, aws_errors, error_code, explain


class Conflict(Exception):
    """A conditional write lost: the object changed (or appeared) meanwhile."""


class Store(Protocol):
    """What the registry and the locks need of a bucket."""

    def url(self, key: str) -> str: ...

    def check(self, listing: str = "") -> dict[str, str] | None:
        """The bucket is there and ours (the sandbox creates its own),
        checked by listing ``listing``: key -> ETag under it, when one page
        holds them all and this is the run's first check; else None."""

    def get(self, key: str) -> tuple[bytes, str] | None:
        """The object's body and ETag, or None when there is no such key."""

    def get_aged(self, key: str) -> tuple[bytes, str, float] | None:
        """The object's body, ETag and age: seconds since it was last
        written, by the store's own clock (never the agent's)."""

    def put(self, key: str, body: bytes, content_type: str = "application/json", *,
            if_match: str | None = None, if_none_match: bool = False) -> str:
        """Write; returns the new ETag. A lost condition raises Conflict."""

    def delete(self, key: str) -> None: ...

    def listing(self, prefix: str) -> dict[str, str]:
        """Key -> ETag of every object under ``prefix``."""


_CONDITION_LOST = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409",
                             "NoSuchKey", "404"})


class S3Store:
    def __init__(self, aws: AwsSession, bucket: str, region: str) -> None:
        self.aws = aws
        self.bucket = bucket
        self.region = region

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def _s3(self) -> Any:
        """The S3 client; without a bucket, the one line that says how to set it."""
        require_bucket(self.aws.settings)
        return self.aws.client("s3", self.region)

    def check(self, listing: str = "") -> dict[str, str] | None:
        require_bucket(self.aws.settings)
        return self.aws.check_bucket(self.region, listing)

    def _get(self, key: str) -> tuple[bytes, dict] | None:
        s3 = self._s3()
        try:
            obj = s3.get_object(Bucket=self.bucket, Key=key)
            check_size(obj.get("ContentLength", 0), self.url(key))
            return obj["Body"].read(), obj
        except aws_errors() as err:
            if error_code(err) in {"NoSuchKey", "404"}:
                return None
            raise explain(err, f"reading {self.url(key)}") from None

    def get(self, key: str) -> tuple[bytes, str] | None:
        found = self._get(key)
        return None if found is None else (found[0], found[1]["ETag"])

    def get_aged(self, key: str) -> tuple[bytes, str, float] | None:
        found = self._get(key)
        if found is None:
            return None
        body, obj = found
        # S3's Date and LastModified, both of this reply: whole seconds.
        try:
            date = parsedate_to_datetime(obj["ResponseMetadata"]["HTTPHeaders"]["date"])
            age = (date - obj["LastModified"]).total_seconds()
        except (KeyError, TypeError, ValueError):
            raise AmiError(f"reading {self.url(key)}: the reply has no Date or Last-Modified "
                           "to judge the object's age by: check AWS_ENDPOINT_URL", code=FAILED) from None
        return body, obj["ETag"], max(age, 0.0)

    def put(self, key: str, body: bytes, content_type: str = "application/json", *,
            if_match: str | None = None, if_none_match: bool = False) -> str:
        s3 = self._s3()
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "Body": body,
                                "ContentType": content_type, "ServerSideEncryption": "AES256"}
        if if_match:
            args["IfMatch"] = if_match
        if if_none_match:
            args["IfNoneMatch"] = "*"
        try:
            return s3.put_object(**args)["ETag"]
        except aws_errors() as err:
            if (if_match or if_none_match) and error_code(err) in _CONDITION_LOST:
                raise Conflict(key) from None
            raise explain(err, f"writing {self.url(key)}") from None

    def delete(self, key: str) -> None:
        self.aws.call(f"deleting {self.url(key)}", "s3", self.region, "delete_object",
                      Bucket=self.bucket, Key=key)

    def listing(self, prefix: str) -> dict[str, str]:
        objects = self.aws.pages(f"listing {self.url(prefix)}", "s3", self.region,
                                 "list_objects_v2", "Contents", Bucket=self.bucket, Prefix=prefix)
        return {o["Key"]: o["ETag"] for o in objects}

