"""The AWS session of one run: where calls go (AWS, AWS_ENDPOINT_URL, or
the sandbox's own emulator), its botocore clients, and one line for every AWS
failure. The ports are built on it: ``ec2``, ``ssm``, ``kms`` (and
``Identity`` here), and ``s3.S3Store``; nothing else calls AWS.

botocore is imported on first use only: ``doit list`` never pays for it.
Clients are created once per run, when first used, and shared by threads
(botocore clients are thread-safe).
"""

from __future__ import annotations

import functools
import threading
from types import MappingProxyType
from typing import Any, Callable

from ..core.clock import Clock
from ..core.errors import AmiError, FAILED
from ..core.settings import Settings, require_bucket

SANDBOX_CREDENTIALS = MappingProxyType({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
# How long one AWS call may take to connect, and how often it is tried: an
# unreachable endpoint is reported in seconds, not after minutes of retries.
CONNECT_TIMEOUT = 2
ATTEMPTS = 3
PROBE_ATTEMPTS = 2


_SERVER_FAULTS = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable",
                            "RequestTimeout"})
# botocore's own list (retries/standard.py): AWS limiting how fast we ask.
_THROTTLED = frozenset({"Throttling", "ThrottlingException", "ThrottledException",
                        "RequestThrottledException", "TooManyRequestsException",
                        "ProvisionedThroughputExceededException", "RequestLimitExceeded",
                        "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
                        "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException"})


class Unreachable(AmiError):
    """AWS could not be asked at all: no credentials, no network."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=FAILED)


@functools.lru_cache(maxsize=1)
def known_regions() -> frozenset[str]:
    """Every region in botocore's own endpoint data (read offline, once)."""
    from botocore.loaders import Loader
    partitions = Loader().load_data("endpoints")["partitions"]
    return frozenset(r for p in partitions for r in p["regions"])


@functools.lru_cache(maxsize=1)
def known_instance_types() -> frozenset[str]:
    """Every instance type in botocore's EC2 model (read offline, once)."""
    from botocore.loaders import Loader
    shapes = Loader().load_service_model("ec2", "service-2")["shapes"]
    return frozenset(shapes.get("InstanceType", {}).get("enum", ()))


def error_code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError
    return (BotoCoreError, ClientError)


def explain(err: Exception, what: str) -> AmiError:
    """One line for an AWS failure, saying what we were doing and what to do."""
    from botocore.exceptions import (ClientError, ConnectTimeoutError, EndpointConnectionError,
                                     NoCredentialsError, NoRegionError)

    if isinstance(err, NoCredentialsError):
        return Unreachable(f"{what}: no AWS credentials found: configure them "
                           "(AWS_PROFILE, instance role) or set AMI_SANDBOX=1")
    if isinstance(err, NoRegionError):
        return AmiError(f"{what}: no AWS region: set AWS_REGION")
    if isinstance(err, (EndpointConnectionError, ConnectTimeoutError)):
        return Unreachable(f"{what}: cannot reach {err.kwargs.get('endpoint_url', 'AWS')}: "
                           "check the network or AWS_ENDPOINT_URL")
    if isinstance(err, ClientError):
        # A reply with no error body (a proxy's, a bare 5xx) still has its status.
        code = error_code(err) or str(err.response.get("ResponseMetadata", {})
                                      .get("HTTPStatusCode", "") or "unknown")
        hint = {
            "NoSuchBucket": "create the bucket or fix AMI_BUCKET",
            "AccessDenied": "grant the build role access (docs/security.md, IAM policies)",
            "UnauthorizedOperation": "grant the build role access (docs/security.md, IAM policies)",
            "403": "grant the build role access (docs/security.md, IAM policies)",
            "404": "create the bucket or fix AMI_BUCKET",
        }.get(code, "AWS is limiting how fast this account calls it, and retries did not "
              "get through: run again in a minute" if code in _THROTTLED else
              "a fault on AWS's side: run again" if code in _SERVER_FAULTS or
              code.startswith("5") else "see AWS's message for what to fix")
        message = err.response.get("Error", {}).get("Message") or "no message"
        return AmiError(f"{what}: {code}: {message}: {hint}", code=FAILED)
    return AmiError(f"{what}: {type(err).__name__}: {err}", code=FAILED)


def packer_env(settings: Settings, endpoint: str | None) -> dict[str, str]:
    """The environment Packer runs in: the user's, calls sent where the
    run's go (``endpoint``), and dummy credentials for the sandbox's own
    emulator, so real ones are never sent to it."""
    env = dict(settings.env)
    env.setdefault("CHECKPOINT_DISABLE", "1")    # no version check call home from Packer
    if endpoint:
        env["AWS_ENDPOINT_URL"] = endpoint       # provisioners' AWS calls go there too
    if settings.sandbox and not settings.endpoint:
        env.update(SANDBOX_CREDENTIALS)
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
    return env


class AwsSession:
    """The AWS side of one run: its clients, made on first use and shared by
    its threads, and the calls the ports make through them. ``endpoint``
    says where calls go: it is asked once, on the first call (the sandbox
    starts its emulator then). ``session`` is a botocore Session to make
    clients with (default: a new one, on first use; tests share one across
    runs, as botocore loads its service models once per session). botocore,
    not boto3: the clients are the same, and boto3 would add its resources
    and s3transfer to every run's start. Every reply's ``Date`` tells
    ``clock`` the cloud's time."""

    def __init__(self, settings: Settings, endpoint: Callable[[], str | None],
                 session: Any = None, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock()
        self._endpoint_of = endpoint
        self._lock = threading.Lock()
        self._url: list[str | None] = []
        self._session: Any = session
        self._clients: dict[tuple[str, str, int], Any] = {}
        self._bucket_checked = False

    @property
    def own_emulator(self) -> bool:
        """The sandbox's own emulator: it gets dummy credentials, never yours."""
        return self.settings.sandbox and not self.settings.endpoint

    def endpoint(self) -> str | None:
        with self._lock:
            if not self._url:
                self._url.append(self._endpoint_of())
            return self._url[0]

    def client(self, service: str, region: str, attempts: int = ATTEMPTS) -> Any:
        url = self.endpoint()
        with self._lock:
            key = (service, region, attempts)
            if key not in self._clients:
                import botocore.session
                from botocore.config import Config

                kwargs: dict[str, Any] = {
                    "region_name": region,
                    "config": Config(retries={"mode": "standard", "max_attempts": attempts},
                                     connect_timeout=CONNECT_TIMEOUT, read_timeout=30,
                                     max_pool_connections=32),
                }
                if url:
                    kwargs["endpoint_url"] = url
                if self.own_emulator:
                    kwargs["aws_access_key_id"] = SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"]
                    kwargs["aws_secret_access_key"] = SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
                if self._session is None:
                    self._session = botocore.session.get_session()
                client = self._session.create_client(service, **kwargs)
                client.meta.events.register("after-call", self._observe_date)
                self._clients[key] = client
            return self._clients[key]

    def _observe_date(self, http_response: Any = None, **_: Any) -> None:
        if http_response is not None:
            self.clock.observe(http_response.headers.get("Date"))

    def call(self, what: str, service: str, region: str, operation: str, **kwargs: Any) -> Any:
        """One AWS call; a failure is one line saying what we were doing."""
        try:
            return getattr(self.client(service, region), operation)(**kwargs)
        except aws_errors() as err:
            raise explain(err, what) from None

    def call_if_known(self, what: str, service: str, region: str, operation: str,
                      **kwargs: Any) -> bool:
        """One AWS call that an emulator may lack: False when a custom
        endpoint answers it with something that is not an AWS reply (moto
        answers a call it has not implemented with an HTML 500). Against AWS
        any failure is one, as with :meth:`call`."""
        from botocore.parsers import ResponseParserError
        try:
            getattr(self.client(service, region, attempts=1 if self.endpoint() else ATTEMPTS),
                    operation)(**kwargs)
            return True
        except ResponseParserError as err:
            if self.endpoint():
                return False
            raise explain(err, what) from None
        except aws_errors() as err:
            raise explain(err, what) from None

    def pages(self, what: str, service: str, region: str, operation: str, key: str,
              **kwargs: Any) -> list[dict]:
        try:
            paginator = self.client(service, region).get_paginator(operation)
            return [item for page in paginator.paginate(**kwargs) for item in page.get(key, [])]
        except aws_errors() as err:
            raise explain(err, what) from None

    # -- S3 ------------------------------------------------------------------

    def check_bucket(self, region: str, prefix: str = "") -> dict[str, str] | None:
        """The bucket must exist and be ours to list; the sandbox creates its own.
        Asked with few retries, so an unreachable endpoint is said at once. A
        listing rather than HeadBucket: it needs s3:ListBucket, as HeadBucket
        does on AWS, and an emulator agrees. The listing is of ``prefix``
        (key -> ETag), returned when its one page is whole, so a caller
        that lists there anyway need not (None: already checked, or more
        than a page)."""
        bucket = require_bucket(self.settings)
        if self._bucket_checked:
            return None
        s3 = self.client("s3", region, attempts=PROBE_ATTEMPTS)
        listed: dict[str, str] | None = {}
        try:
            page = s3.list_objects_v2(Bucket=bucket, Prefix=prefix or self.settings.prefix,
                                      **({} if prefix else {"MaxKeys": 1}))
            listed = None if page.get("IsTruncated") else {
                o["Key"]: o["ETag"] for o in page.get("Contents", [])}
        except aws_errors() as err:
            if self.settings.sandbox and error_code(err) in {"404", "NoSuchBucket"}:
                args: dict[str, Any] = {"Bucket": bucket}
                if region != "us-east-1":
                    args["CreateBucketConfiguration"] = {"LocationConstraint": region}
                try:
                    s3.create_bucket(**args)
                except aws_errors() as create_err:
                    if error_code(create_err) != "BucketAlreadyOwnedByYou":   # another run won
                        raise explain(create_err, f"creating sandbox bucket s3://{bucket}") from None
            elif error_code(err) in {"404", "NoSuchBucket"}:
                raise AmiError(f"bucket s3://{bucket} does not exist: create it (private, "
                               "SSE on) or fix AMI_BUCKET") from None
            else:
                raise explain(err, f"checking bucket s3://{bucket}") from None
        self._bucket_checked = True
        return listed if prefix else None


class Identity:
    """Who AWS says the run's credentials are (STS GetCallerIdentity: it
    needs no permission)."""

    def __init__(self, aws: AwsSession, region: str) -> None:
        self.aws = aws
        self.region = region

    def caller(self) -> str:
        return str(self.aws.call("asking AWS who is acting", "sts", self.region,
                                 "get_caller_identity").get("Arn", "unknown"))
