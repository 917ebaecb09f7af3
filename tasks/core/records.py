"""Image records: what an AMI was built from, as JSON, and their local copies.

A record is checked field by field when it is read, from S3 or from disk:
any flaw is one :class:`AmiError` that names where the record came from
and the key at fault, never a ``TypeError`` later on.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .errors import AmiError
from .files import write_atomic
from .names import AMI_RE, DIGEST_RE, NAME_RE, REGION_RE

MAX_RECORD_BYTES = 4 << 20     # a record lists its inputs; 4 MB is ~40,000 of them


def check_size(size: int, where: str) -> None:
    """A record bigger than any record may be is refused before it is read."""
    if size > MAX_RECORD_BYTES:
        raise AmiError(f"{where}: {size} bytes, more than a record may hold "
                       f"({MAX_RECORD_BYTES}): delete it or restore it from digests/")


@dataclass(frozen=True)
class Promotion:
    """How a record came to be current in a channel without a build there."""
    from_channel: str
    by: str
    at: str
    replaced_ami: str | None
    replaced_digest: str | None   # the channel's own inputs when promoted: the promotion
                                  # holds while a build there would compute this digest


@dataclass(frozen=True)
class Tested:
    """What an AMI's acceptance tests said, for one set of tests. Kept apart
    from the image's digest: a change to the tests alone re-tests the AMI."""
    digest: str                   # of the test files
    files: dict[str, str]         # test file -> its manifest entry
    passed: bool
    counts: dict[str, int]        # passed, failed, skipped, errors
    failures: tuple[str, ...]     # the failing tests (at most MAX_FAILURES)
    at: str                       # when, ISO 8601
    log: str | None = None        # the test log's file name, beside the build log
    statement: str | None = None  # sha256 of its signed test result (None: unsigned)


MAX_FAILURES = 20
_COUNTS = ("passed", "failed", "skipped", "errors")


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
    validated_seconds: float | None = None     # how long `doit validate` took before the build
    provenance: str | None = None              # sha256 of its signed statement (None: unsigned)
    inputs: dict[str, str] = field(default_factory=dict)
    promotion: Promotion | None = None
    tests: Tested | None = None                # its acceptance tests' verdict, if any

    @property
    def ami(self) -> str:
        return self.amis[self.region]

    @property
    def build_seconds(self) -> float | None:
        """How long its Packer build took, when known."""
        try:
            return (datetime.fromisoformat(self.build_finished or "")
                    - datetime.fromisoformat(self.build_started or "")).total_seconds()
        except (TypeError, ValueError):
            return None

    @property
    def seconds(self) -> float | None:
        """How long building it took: validation, then Packer."""
        packer = self.build_seconds
        return None if packer is None else packer + (self.validated_seconds or 0.0)

    def age_days(self, now: datetime | None = None) -> float | None:
        try:
            built = datetime.fromisoformat(self.build_finished or "")
            return ((now or datetime.now(timezone.utc)) - built).total_seconds() / 86400
        except (TypeError, ValueError):
            return None

    def to_json(self) -> str:
        data = asdict(self)
        for key in ("promotion", "tests"):
            if data[key] is None:
                del data[key]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    def body(self) -> bytes:
        return self.to_json().encode()

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> "Record":
        """Parse and check a record; every flaw is an AmiError naming ``where``."""
        check_size(len(text), where)
        try:
            data = json.loads(text)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise AmiError(f"{where}: not valid JSON: delete it or restore it from the "
                           "bucket's digests/ copy") from None
        if not isinstance(data, dict):
            raise AmiError(f"{where}: a record must be a JSON object")
        return cls(**_checked(data, where))


def _fail(where: str, key: str, problem: str) -> AmiError:
    return AmiError(f"{where}: key {key!r} {problem}: delete the record or restore it "
                    "from the bucket's digests/ copy")


def _str_or_none(data: dict, key: str, where: str) -> None:
    if data.get(key) is not None and not isinstance(data[key], str):
        raise _fail(where, key, f"must be a string, not {type(data[key]).__name__}")


def _str_map(data: dict, key: str, where: str, values: type | tuple = str) -> None:
    value = data.get(key)
    if value is None:
        return
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, values)
                                              for k, v in value.items()):
        raise _fail(where, key, "must be an object of strings")


def _finite(value: Any) -> bool:
    """JSON numbers, strings and the like, but no NaN or infinity anywhere."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _checked(data: dict, where: str) -> dict:
    missing = [k for k in ("image", "region", "amis", "digest") if k not in data]
    if missing:
        raise AmiError(f"{where}: record lacks {', '.join(missing)}")
    known = set(Record.__dataclass_fields__)
    data = {k: v for k, v in data.items() if k in known}
    if not isinstance(data["image"], str) or not NAME_RE.fullmatch(data["image"]):
        raise AmiError(f"{where}: record has an invalid image name {data['image']!r}")
    amis = data["amis"]
    if not isinstance(amis, dict) or not isinstance(data["region"], str) \
            or data["region"] not in amis:
        raise AmiError(f"{where}: record has no AMI for its region {data['region']!r}")
    for region, ami in amis.items():
        if not (isinstance(region, str) and REGION_RE.fullmatch(region)
                and isinstance(ami, str) and AMI_RE.fullmatch(ami)):
            raise AmiError(f"{where}: {region!r}: {ami!r} is not an AMI id "
                           "(ami- and 8 to 17 hex digits)")
    if not isinstance(data["digest"], str) or not DIGEST_RE.fullmatch(data["digest"]):
        raise AmiError(f"{where}: record digest is not a sha256 hex digest")
    for key in ("packer_version", "build_started", "build_finished", "build_log", "provenance"):
        _str_or_none(data, key, where)
    seconds = data.get("validated_seconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                or not 0 <= seconds < 1e9):
        raise _fail(where, "validated_seconds", "must be a number of seconds")
    for key in ("build_started", "build_finished"):
        if data.get(key) is not None:
            try:
                datetime.fromisoformat(data[key])
            except ValueError:
                raise _fail(where, key, "is not an ISO 8601 time") from None
    _str_map(data, "parent", where)
    if data.get("parent") is not None and not AMI_RE.fullmatch(data["parent"].get("ami", "")):
        raise _fail(where, "parent", "has no valid 'ami'")
    _str_map(data, "inputs", where)
    for key in ("source", "settings", "git"):
        if data.get(key) is not None and not (isinstance(data[key], dict) and _finite(data[key])):
            raise _fail(where, key, "must be an object")
    for key in ("settings", "git", "inputs"):
        if data.get(key) is None:
            data.pop(key, None)
    if data.get("promotion") is not None:
        data["promotion"] = _promotion(data["promotion"], where)
    if data.get("tests") is not None:
        data["tests"] = _tested(data["tests"], where)
    return data


def _tested(value: Any, where: str) -> Tested:
    problem = "must be an object of digest, files, passed, counts, failures and at"
    if not isinstance(value, dict):
        raise _fail(where, "tests", problem)
    digest, files, counts = value.get("digest"), value.get("files"), value.get("counts")
    failures = value.get("failures")
    if not (isinstance(digest, str) and DIGEST_RE.fullmatch(digest)
            and isinstance(value.get("passed"), bool) and isinstance(value.get("at"), str)
            and isinstance(files, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
            and isinstance(counts, dict) and set(counts) <= set(_COUNTS)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                    for v in counts.values())
            and isinstance(failures, list) and all(isinstance(f, str) for f in failures)
            and all(value.get(k) is None or isinstance(value[k], str)
                    for k in ("log", "statement"))):
        raise _fail(where, "tests", problem)
    return Tested(digest=digest, files=files, passed=value["passed"], counts=counts,
                  failures=tuple(failures[:MAX_FAILURES]), at=value["at"],
                  log=value.get("log"), statement=value.get("statement"))


def _promotion(value: Any, where: str) -> Promotion:
    fields = Promotion.__dataclass_fields__
    if not isinstance(value, dict) or not all(
            value.get(k) is None or isinstance(value.get(k), str) for k in fields) \
            or not all(isinstance(value.get(k), str) for k in ("from_channel", "by", "at")):
        raise _fail(where, "promotion", "must be an object of from_channel, by, at, "
                                        "replaced_ami and replaced_digest strings")
    return Promotion(**{k: value.get(k) for k in fields})


# -- local files -------------------------------------------------------------

def read_local(path: Path) -> Record | None:
    try:
        text = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise AmiError(f"{path}: cannot read ({err.strerror}): check its permissions") from None
    return Record.from_json(text, str(path))


def save_local(path: Path, data: bytes) -> bool:
    """Mirror a record from S3: written only when the content differs, so doit
    sees no change in mtime either. Not forced to disk: S3 holds the record,
    and a lost copy is pulled again."""
    try:
        if path.read_bytes() == data:
            return False
    except OSError:
        pass
    write_atomic(path, data, durable=False)
    return True
