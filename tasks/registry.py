"""Image records: JSON files under ``.amis/records`` that mirror the bucket.

In S3, under ``$AMI_PREFIX``:

- ``channels/<channel>/<image>.json``  the record of the image's current AMI
  in that channel (``main`` for the default branch, else the branch's)
- ``channels/<channel>/<image>.txt``   just its AMI id in the main region
- ``digests/<image>/<digest>.json``  every record ever built, by content
  digest, shared by all channels
- ``promotions/<image>/<time>.json``  who promoted what, when

Objects are private (no ACL) and encrypted with SSE-S3.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import aws
from .config import Settings, require_bucket
from .errors import AmiError
from .graph import AMI_RE, NAME_RE, REGION_RE

_DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
PULL_THREADS = 16


@dataclass
class Record:
    image: str
    region: str
    amis: dict[str, str]
    digest: str
    parent: dict[str, str] | None = None       # {"image": ..., "ami": ...}
    source: dict[str, Any] | None = None       # for the source image: how it resolved
    settings: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] = field(default_factory=dict)
    packer_version: str | None = None
    build_started: str | None = None
    build_finished: str | None = None
    build_log: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)

    @property
    def ami(self) -> str:
        return self.amis[self.region]

    @property
    def build_seconds(self) -> float | None:
        """How long its Packer build took, when known."""
        try:
            return (datetime.fromisoformat(self.build_finished or "")
                    - datetime.fromisoformat(self.build_started or "")).total_seconds()
        except ValueError:
            return None

    def age_days(self, now: datetime | None = None) -> float | None:
        try:
            built = datetime.fromisoformat(self.build_finished or "")
        except ValueError:
            return None
        return ((now or datetime.now(timezone.utc)) - built).total_seconds() / 86400

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> "Record":
        """Parse and check a record; every flaw is an AmiError naming ``where``."""
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError):
            raise AmiError(f"{where}: not valid JSON: delete it or restore it from the "
                           "bucket's digests/ copy") from None
        if not isinstance(data, dict):
            raise AmiError(f"{where}: a record must be a JSON object")
        missing = [k for k in ("image", "region", "amis", "digest") if k not in data]
        if missing:
            raise AmiError(f"{where}: record lacks {', '.join(missing)}")
        known = {f for f in cls.__dataclass_fields__}
        data = {k: v for k, v in data.items() if k in known}
        if not isinstance(data["image"], str) or not NAME_RE.match(data["image"]):
            raise AmiError(f"{where}: record has an invalid image name {data['image']!r}")
        amis = data["amis"]
        if not isinstance(amis, dict) or data["region"] not in amis:
            raise AmiError(f"{where}: record has no AMI for its region {data['region']!r}")
        for region, ami in amis.items():
            if not (isinstance(region, str) and REGION_RE.match(region)
                    and isinstance(ami, str) and AMI_RE.match(ami)):
                raise AmiError(f"{where}: {region!r}: {ami!r} is not an AMI id "
                               "(ami- and 8 to 17 hex digits)")
        if not isinstance(data["digest"], str) or not _DIGEST_RE.match(data["digest"]):
            raise AmiError(f"{where}: record digest is not a sha256 hex digest")
        return cls(**data)


# -- local files -------------------------------------------------------------

def read_local(path: Path) -> Record | None:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    return Record.from_json(text, str(path))


def write_atomic(path: Path, data: bytes) -> None:
    """Write by temporary file and rename: a crash leaves the old file whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_local(path: Path, data: bytes) -> bool:
    """Write only when the content differs, so doit sees no change in mtime either."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    write_atomic(path, data)
    return True


# -- S3 ----------------------------------------------------------------------

def current_key(settings: Settings, channel: str, image: str) -> str:
    return f"{settings.prefix}channels/{channel}/{image}.json"


def id_key(settings: Settings, channel: str, image: str) -> str:
    return f"{settings.prefix}channels/{channel}/{image}.txt"


def digest_key(settings: Settings, image: str, digest: str) -> str:
    return f"{settings.prefix}digests/{image}/{digest}.json"


class Conflict(Exception):
    """A conditional write lost: the object changed (or appeared) meanwhile."""


def get_object(settings: Settings, region: str, key: str) -> tuple[bytes, str] | None:
    """The object's body and ETag, or None when there is no such key."""
    s3 = aws.client(settings, "s3", region)
    try:
        obj = s3.get_object(Bucket=settings.bucket, Key=key)
        return obj["Body"].read(), obj["ETag"]
    except aws.aws_errors() as err:
        if aws.error_code(err) in {"NoSuchKey", "404"}:
            return None
        raise aws.explain(err, f"reading s3://{settings.bucket}/{key}") from None


def put_object(settings: Settings, region: str, key: str, body: bytes, content_type: str,
               *, if_match: str | None = None, if_none_match: bool = False) -> str:
    """Write a private, SSE-encrypted object; returns its ETag. With a
    condition, losing the race raises Conflict instead of overwriting."""
    s3 = aws.client(settings, "s3", region)
    args: dict[str, Any] = {"Bucket": settings.bucket, "Key": key, "Body": body,
                            "ContentType": content_type, "ServerSideEncryption": "AES256"}
    if if_match:
        args["IfMatch"] = if_match
    if if_none_match:
        args["IfNoneMatch"] = "*"
    try:
        return s3.put_object(**args)["ETag"]
    except aws.aws_errors() as err:
        code = aws.error_code(err)
        conditional = if_match or if_none_match
        if conditional and code in {"PreconditionFailed", "412", "ConditionalRequestConflict",
                                    "409", "NoSuchKey", "404"}:
            raise Conflict(key) from None
        raise aws.explain(err, f"writing s3://{settings.bucket}/{key}") from None


def _get(settings: Settings, region: str, key: str) -> bytes | None:
    found = get_object(settings, region, key)
    return found[0] if found else None


def pull(settings: Settings, region: str, channel: str, images: list[str]) -> dict[str, str]:
    """Mirror every image's current record from S3 into ``.amis/records``.

    Returns image -> "new", "updated", "same" or "absent". Any record that
    fails its checks stops the pull before a single local file changes.
    """
    require_bucket(settings)
    aws.check_bucket(settings, region)

    def fetch(image: str) -> tuple[str, bytes | None]:
        key = current_key(settings, channel, image)
        body = _get(settings, region, key)
        if body is not None:
            record = Record.from_json(body, f"s3://{settings.bucket}/{key}")
            if record.image != image:
                raise AmiError(f"s3://{settings.bucket}/{key}: holds the record of "
                               f"{record.image!r}, not {image!r}")
        return image, body

    with ThreadPoolExecutor(max_workers=min(PULL_THREADS, len(images) or 1)) as pool:
        fetched = list(pool.map(fetch, images))

    status: dict[str, str] = {}
    for image, body in fetched:
        path = settings.record_path(image)
        if body is None:
            status[image] = "absent"
            path.unlink(missing_ok=True)
        else:
            existed = path.exists()
            changed = save_local(path, body)
            status[image] = "same" if not changed else ("updated" if existed else "new")
    return status


def fetch_by_digest(settings: Settings, region: str, image: str, digest: str) -> Record | None:
    key = digest_key(settings, image, digest)
    body = _get(settings, region, key)
    if body is None:
        return None
    record = Record.from_json(body, f"s3://{settings.bucket}/{key}")
    return record if record.image == image and record.digest == digest else None


def publish(settings: Settings, record: Record, channel: str, *, new_build: bool,
            mirror: bool = True) -> Record:
    """Publish to S3, then mirror locally; returns the record now current.

    The digest copy goes first, so a current pointer never names a record
    that is not also kept by digest. The pointer moves by conditional write
    on the ETag just read: if another agent moved it meanwhile to a build
    that started later than ours, theirs stays current."""
    body = record.to_json().encode()
    if new_build:
        put_object(settings, record.region, digest_key(settings, record.image, record.digest),
                   body, "application/json")
    key = current_key(settings, channel, record.image)
    where = f"s3://{settings.bucket}/{key}"
    for _ in range(10):
        found = get_object(settings, record.region, key)
        if found and found[0] == body:
            break
        try:
            put_object(settings, record.region, key, body, "application/json",
                       if_match=found[1] if found else None, if_none_match=not found)
            break
        except Conflict:
            latest = get_object(settings, record.region, key)
            if latest:
                theirs = Record.from_json(latest[0], where)
                if (theirs.build_started or "") > (record.build_started or ""):
                    save_local(settings.record_path(record.image), latest[0])
                    return theirs
    else:
        raise AmiError(f"{where}: kept changing while publishing {record.image}: run again")
    put_object(settings, record.region, id_key(settings, channel, record.image),
               (record.ami + "\n").encode(), "text/plain")
    if settings.ssm_prefix:
        aws.put_ssm_ami(settings, record.region, f"{settings.ssm_prefix}/{channel}/{record.image}",
                        record.ami)
    if mirror:
        save_local(settings.record_path(record.image), body)
    return record


def promote(settings: Settings, region: str, image: str, source: str, target: str,
            actor: str, mirror: bool) -> tuple[Record, Record | None]:
    """Point channel ``target`` at channel ``source``'s record of ``image``,
    and keep a note of who did it, when, and what it replaced."""
    key = current_key(settings, source, image)
    found = _get(settings, region, key)
    if found is None:
        raise AmiError(f"s3://{settings.bucket}/{key}: channel {source} has no record of "
                       f"{image}: build it there first, or check the channel name")
    record = Record.from_json(found, f"s3://{settings.bucket}/{key}")
    if not aws.ami_exists(settings, record.ami, record.region):
        raise AmiError(f"{image} in channel {source} is {record.ami}, which no longer exists: "
                       "rebuild it before promoting")
    old = _get(settings, region, current_key(settings, target, image))
    replaced = Record.from_json(old, target) if old else None
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    note = {"image": image, "from_channel": source, "to_channel": target, "ami": record.ami,
            "replaced_ami": replaced.ami if replaced else None, "by": actor, "at": now}
    put_object(settings, region, f"{settings.prefix}promotions/{image}/{now}.json",
               (json.dumps(note, indent=2, sort_keys=True) + "\n").encode(), "application/json")
    publish(settings, record, target, new_build=False, mirror=mirror)
    return record, replaced
