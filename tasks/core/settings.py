"""Settings: the environment, read once, here and nowhere else, so a
Buildkite step configures a run with nothing but variables. Everything
below receives what it needs from :class:`Settings`; subprocesses get
``Settings.env``, the environment as it was when the run began."""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from .errors import AmiError
from .names import CHANNEL_RE

GRAPH_FILE = "amis.yaml"
STATE_DIR = ".amis"          # gitignored: records, logs, work files
SANDBOX_BUCKET = "amis-sandbox"
MAX_PREFIX = 180            # s3://<bucket of 63>/<prefix>/ fits an EC2 tag value (256)
MAX_LOCK_TTL = 3600.0        # a lock claiming longer expires this long after its last renewal

# Used with fullmatch: a trailing newline is not part of a value.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_RE = re.compile(r"[A-Za-z0-9!_.*'()/-]*")


def _flag(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Buildkite:
    """What a Buildkite job says about itself (all empty off Buildkite)."""
    active: bool = False            # BUILDKITE=true
    commit: str = ""                # BUILDKITE_COMMIT: Buildkite checks out a detached HEAD
    branch: str = ""
    build_url: str = ""
    job_id: str = ""
    creator: str = ""               # BUILDKITE_BUILD_CREATOR_EMAIL, else BUILDKITE_BUILD_CREATOR
    queue: str = ""                 # BUILDKITE_AGENT_META_DATA_QUEUE
    pipeline_slug: str = ""


@dataclass(frozen=True)
class Settings:
    root: Path
    sandbox: bool
    bucket: str
    prefix: str
    endpoint: str | None      # AWS_ENDPOINT_URL, when set by the user
    packer: str
    validate: bool = True     # AMI_SKIP_VALIDATE=1 builds without `doit validate` first
    retries: int = 2          # AMI_PACKER_RETRIES: tries again after transient AWS errors
    retry_base: float = 30.0  # AMI_RETRY_BASE_SECONDS: first backoff, doubling each time
    lock_ttl: float = 300.0   # AMI_LOCK_TTL_SECONDS: a lock not renewed (every TTL/3) expires
    lock_poll: float = 10.0   # AMI_LOCK_POLL_SECONDS: how often a waiting agent looks again
    channel: str | None = None  # AMI_CHANNEL: publish here instead of the branch's channel
    default_branch: str = "main"  # AMI_DEFAULT_BRANCH: its builds move the `main` channel
    allow_dirty: bool = False  # AMI_ALLOW_DIRTY=1: uncommitted changes may move `main`
    ssm_prefix: str | None = None  # AMI_SSM_PREFIX (e.g. /amis): also publish ids to SSM
    cleanup_timeout: float = 300.0  # AMI_CLEANUP_SECONDS: how long Packer may clean up when cancelled
    actor: str = ""           # AMI_ACTOR: who promotes, for the log (else Buildkite's, git's, $USER)
    user: str = ""            # USER
    signing_key: str = ""     # AMI_SIGNING_KEY: a KMS key id/ARN/alias, or file:<PEM private key>
    verbose: bool = False     # AMI_VERBOSE=1: Packer's whole output, live (doit amis -v)
    term: str = ""            # TERM: "dumb" (or none) gets plain lines, not the live view
    cache: Path | None = None  # this machine's cache for the tool ($XDG_CACHE_HOME or ~/.cache)/amis
    buildkite: Buildkite = field(default_factory=Buildkite)
    env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)

    @property
    def state(self) -> Path:
        return self.root / STATE_DIR

    @property
    def records(self) -> Path:
        return self.state / "records"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    @property
    def stage(self) -> Path:
        return self.state / "stage"

    def shown(self, path: Path) -> str:
        """A path as people see it: relative to the project when inside it."""
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def record_path(self, image: str) -> Path:
        return self.records / f"{image}.json"


def _channel(value: str) -> str:
    if value and not CHANNEL_RE.fullmatch(value):
        raise AmiError(f"AMI_CHANNEL={value!r}: channel names must match [a-z0-9][a-z0-9_-]*")
    return value


# git check-ref-format's rules for a branch name
_BRANCH = re.compile(r"(?!-|/)(?!.*(?:\.\.|@\{|//|/\.|\.lock/|\.lock$|/$|\.$))"
                     r"[^\x00-\x20\x7f~^:?*\[\\]+")


def _branch(env: Mapping[str, str]) -> str:
    for name in ("AMI_DEFAULT_BRANCH", "BUILDKITE_PIPELINE_DEFAULT_BRANCH"):
        value = env.get(name, "").strip()
        if value and not _BRANCH.fullmatch(value) or value in ("@", "HEAD"):
            raise AmiError(f"{name}={value!r} is not a git branch name: set it to the branch "
                           "whose builds move the main channel, e.g. main")
        if value:
            return value
    return "main"


def _ssm_prefix(value: str) -> str | None:
    if not value:
        return None
    if not re.fullmatch(r"(/[A-Za-z0-9_.-]+)+", value):
        raise AmiError(f"AMI_SSM_PREFIX={value!r} must look like /amis (letters, digits, _ . -)")
    return value


def _number(env: Mapping[str, str], name: str, default: float, kind: type = float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = -1
    if not 0 <= value < math.inf:
        raise AmiError(f"{name}={raw!r} must be a non-negative {'whole ' if kind is int else ''}number")
    return value


def _lock_ttl(env: Mapping[str, str]) -> float:
    ttl = _number(env, "AMI_LOCK_TTL_SECONDS", 300.0)
    if not 0 < ttl <= MAX_LOCK_TTL:
        raise AmiError(f"AMI_LOCK_TTL_SECONDS={env['AMI_LOCK_TTL_SECONDS'].strip()!r} must be "
                       f"more than 0 and at most {MAX_LOCK_TTL:.0f} (the holder renews its "
                       "lock every third of it)")
    return ttl


def _buildkite(env: Mapping[str, str]) -> Buildkite:
    get = lambda name: env.get(name, "").strip()    # noqa: E731
    return Buildkite(active=get("BUILDKITE") == "true", commit=get("BUILDKITE_COMMIT"),
                     branch=get("BUILDKITE_BRANCH"), build_url=get("BUILDKITE_BUILD_URL"),
                     job_id=get("BUILDKITE_JOB_ID"),
                     creator=get("BUILDKITE_BUILD_CREATOR_EMAIL") or get("BUILDKITE_BUILD_CREATOR"),
                     queue=get("BUILDKITE_AGENT_META_DATA_QUEUE"),
                     pipeline_slug=get("BUILDKITE_PIPELINE_SLUG"))


def load_settings(root: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read settings without touching the network. Errors name the variable.
    ``env`` defaults to this process's environment."""
    env = MappingProxyType(dict(os.environ if env is None else env))
    sandbox = _flag(env.get("AMI_SANDBOX"))
    bucket = env.get("AMI_BUCKET", "").strip() or (SANDBOX_BUCKET if sandbox else "")
    if bucket and not _BUCKET_RE.fullmatch(bucket):
        raise AmiError(f"AMI_BUCKET={bucket!r} is not a valid S3 bucket name: "
                       "use 3-63 lower-case letters, digits, '.' or '-'")
    prefix = env.get("AMI_PREFIX", "").strip().strip("/")
    if not _PREFIX_RE.fullmatch(prefix) or ".." in prefix.split("/"):
        raise AmiError(f"AMI_PREFIX={prefix!r} holds characters unsafe in an S3 key: "
                       "use letters, digits and / - _ .")
    if len(prefix) > MAX_PREFIX:
        raise AmiError(f"AMI_PREFIX is {len(prefix)} characters long: at most {MAX_PREFIX} "
                       "(it is part of every AMI's Registry tag, at most 256)")
    return Settings(
        root=root,
        sandbox=sandbox,
        bucket=bucket,
        prefix=f"{prefix}/" if prefix else "",
        endpoint=env.get("AWS_ENDPOINT_URL", "").strip() or None,
        packer=env.get("PACKER", "").strip() or "packer",
        validate=not _flag(env.get("AMI_SKIP_VALIDATE")),
        retries=int(_number(env, "AMI_PACKER_RETRIES", 2, int)),
        retry_base=_number(env, "AMI_RETRY_BASE_SECONDS", 30.0),
        lock_ttl=_lock_ttl(env),
        lock_poll=_number(env, "AMI_LOCK_POLL_SECONDS", 10.0),
        channel=_channel(env.get("AMI_CHANNEL", "").strip()) or None,
        default_branch=_branch(env),
        allow_dirty=_flag(env.get("AMI_ALLOW_DIRTY")),
        ssm_prefix=_ssm_prefix(env.get("AMI_SSM_PREFIX", "").strip()),
        cleanup_timeout=_number(env, "AMI_CLEANUP_SECONDS", 300.0),
        actor=env.get("AMI_ACTOR", "").strip(),
        user=env.get("USER", "").strip(),
        verbose=_flag(env.get("AMI_VERBOSE")),
        signing_key=env.get("AMI_SIGNING_KEY", "").strip(),
        term=env.get("TERM", "").strip(),
        cache=_cache(env),
        buildkite=_buildkite(env),
        env=env,
    )


def _cache(env: Mapping[str, str]) -> Path | None:
    base = env.get("XDG_CACHE_HOME", "").strip() or (
        str(Path(env["HOME"]) / ".cache") if env.get("HOME", "").strip() else "")
    return Path(base) / "amis" if base else None


def require_bucket(settings: Settings) -> str:
    if not settings.bucket:
        raise AmiError("AMI_BUCKET is not set: export AMI_BUCKET=<your S3 bucket> "
                       "(or AMI_SANDBOX=1 to build against the local emulator)")
    return settings.bucket
