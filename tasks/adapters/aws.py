"""The AWS adapter: boto3 clients of one run and the few EC2/S3/SSM calls
the tree makes.

boto3 is imported on first use only: ``doit list`` never pays for it.
Clients are created once per run and shared by threads (boto3 clients are
thread-safe). Every AWS failure becomes one AmiError line.
"""

from __future__ import annotations

import re
import threading
from types import MappingProxyType
from typing import Any, Callable

from ..core.clock import Clock
from ..core.errors import AmiError, FAILED
from ..core.graph import Source
from ..core.settings import Settings, require_bucket

SANDBOX_CREDENTIALS = MappingProxyType({"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"})
# How long one AWS call may take to connect, and how often it is tried: an
# unreachable endpoint is reported in seconds, not after minutes of retries.
CONNECT_TIMEOUT = 2
ATTEMPTS = 3
PROBE_ATTEMPTS = 2


_SERVER_FAULTS = frozenset({"InternalError", "InternalFailure", "ServiceUnavailable",
                            "SlowDown", "RequestTimeout", "Throttling", "ThrottlingException"})


class Unreachable(AmiError):
    """AWS could not be asked at all: no credentials, no network."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=FAILED)


def tags_of(image: dict) -> dict[str, str]:
    """An EC2 description's tags (``[{"Key": k, "Value": v}]``) as a mapping."""
    return {t["Key"]: t["Value"] for t in image.get("Tags", [])}


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
        code = error_code(err)
        hint = {
            "NoSuchBucket": "create the bucket or fix AMI_BUCKET",
            "AccessDenied": "grant the build role access (docs/security.md, IAM policies)",
            "UnauthorizedOperation": "grant the build role access (docs/security.md, IAM policies)",
            "403": "grant the build role access (docs/security.md, IAM policies)",
            "404": "create the bucket or fix AMI_BUCKET",
        }.get(code, "a fault on AWS's side: run again" if code in _SERVER_FAULTS or
              code.startswith("5") else "see AWS's message for what to fix")
        message = err.response.get("Error", {}).get("Message") or code
        return AmiError(f"{what}: {code}: {message}: {hint}", code=FAILED)
    return AmiError(f"{what}: {type(err).__name__}: {err}", code=FAILED)


class Aws:
    """Clients and calls for one run. ``endpoint`` says where calls go: it
    is asked once, on the first call (the sandbox starts its emulator then).
    ``session`` is a boto3 Session to make clients with (default: a new one,
    on first use; tests share one across runs, as botocore loads its
    service models once per session). Every reply's ``Date`` tells
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
        self._regions: frozenset[str] | None = None
        self._types: frozenset[str] | None = None

    @property
    def own_emulator(self) -> bool:
        """The sandbox's own emulator: it gets dummy credentials, never yours."""
        return self.settings.sandbox and not self.settings.endpoint

    def known_regions(self) -> frozenset[str]:
        """Every region in botocore's own endpoint data (read offline, once)."""
        if self._regions is None:
            from botocore.loaders import Loader
            partitions = Loader().load_data("endpoints")["partitions"]
            self._regions = frozenset(r for p in partitions for r in p["regions"])
        return self._regions

    def kms(self, region: str) -> Callable[..., dict]:
        """``kms(operation, **kwargs)``: one KMS call in ``region``."""
        def call(operation: str, **kwargs: Any) -> dict:
            name = re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()     # Sign -> sign
            return self.call(f"KMS {operation} on {kwargs.get('KeyId', '')}", "kms", region,
                             name, **kwargs)
        return call

    def tag(self, region: str, resource: str, tags: dict[str, str]) -> None:
        self.call(f"tagging {resource} ({region})", "ec2", region, "create_tags",
                  Resources=[resource], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def known_instance_types(self) -> frozenset[str]:
        """Every instance type in botocore's EC2 model (read offline, once)."""
        if self._types is None:
            from botocore.loaders import Loader
            shapes = Loader().load_service_model("ec2", "service-2")["shapes"]
            self._types = frozenset(shapes.get("InstanceType", {}).get("enum", ()))
        return self._types

    def endpoint(self) -> str | None:
        with self._lock:
            if not self._url:
                self._url.append(self._endpoint_of())
            return self._url[0]

    def subprocess_env(self) -> dict[str, str]:
        """Environment for Packer: the user's, plus dummy credentials for the
        sandbox's own emulator so real ones are never sent to it."""
        env = dict(self.settings.env)
        env.setdefault("CHECKPOINT_DISABLE", "1")    # no version check call home from Packer
        url = self.endpoint()
        if url:
            env["AWS_ENDPOINT_URL"] = url            # provisioners' AWS calls go there too
        if self.own_emulator:
            env.update(SANDBOX_CREDENTIALS)
            env.pop("AWS_SESSION_TOKEN", None)
            env.pop("AWS_PROFILE", None)
        return env

    def client(self, service: str, region: str, attempts: int = ATTEMPTS) -> Any:
        url = self.endpoint()
        with self._lock:
            key = (service, region, attempts)
            if key not in self._clients:
                import boto3
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
                    self._session = boto3.session.Session()
                client = self._session.client(service, **kwargs)
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

    def caller(self, region: str) -> str:
        """Who AWS says these credentials are (STS GetCallerIdentity: it
        needs no permission)."""
        return str(self.call("asking AWS who is acting", "sts", region,
                             "get_caller_identity").get("Arn", "unknown"))

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

    # -- EC2 -----------------------------------------------------------------

    def existing_amis(self, region: str, amis: list[str]) -> set[str]:
        """Which of these AMI ids exist (and are available), in one call per 200."""
        found: set[str] = set()
        for i in range(0, len(amis), 200):
            images = self.call(f"looking up recorded AMIs in {region}", "ec2", region,
                               "describe_images",
                               Filters=[{"Name": "image-id", "Values": amis[i:i + 200]}])["Images"]
            found |= {img["ImageId"] for img in images if img.get("State") == "available"}
        return found

    def own_amis(self, region: str, amis: list[str]) -> dict[str, dict]:
        """AMI id -> description, for those of these that exist and are the
        account's own (disabled ones too: ``revoke --disable``), in one call
        per 200."""
        found: dict[str, dict] = {}
        for i in range(0, len(amis), 200):
            images = self.call(f"looking up recorded AMIs in {region}", "ec2", region,
                               "describe_images", Owners=["self"], IncludeDisabled=True,
                               Filters=[{"Name": "image-id", "Values": amis[i:i + 200]}])["Images"]
            found.update({img["ImageId"]: img for img in images})
        return found

    def describe_amis(self, region: str, amis: list[str]) -> dict[str, dict]:
        """AMI id -> its description (tags, creation date, state), for those
        that exist, disabled ones too."""
        if not amis:
            return {}
        images = self.call(f"describing {', '.join(amis)} in {region}", "ec2", region,
                           "describe_images", IncludeDisabled=True,
                           Filters=[{"Name": "image-id", "Values": amis}])["Images"]
        return {img["ImageId"]: img for img in images}

    def require_imdsv2(self, region: str, instance: str) -> None:
        """IMDSv2 on the build instance, before anything is provisioned
        (Packer 1.6 has no metadata_options)."""
        self.call(f"requiring IMDSv2 on build instance {instance}", "ec2", region,
                  "modify_instance_metadata_options", InstanceId=instance,
                  HttpTokens="required", HttpEndpoint="enabled")

    def resolve_source(self, source: Source, region: str) -> tuple[str, str]:
        """The source's AMI id and how it was found."""
        spec = source.spec(self.settings.sandbox)
        if "ami" in spec:
            return spec["ami"], "pinned"
        images = self._matching(f"resolving source {source.name}", spec, region,
                                {"Name": "state", "Values": ["available"]})
        if not images:
            raise AmiError(f"source {source.name}: no image of owners {spec['owners']} matches "
                           f"{spec['name_pattern']!r} in {region}: fix the filter in amis.yaml")
        newest = max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))
        return newest["ImageId"], f"newest of {spec['name_pattern']!r}: {newest.get('Name', '')}"

    def source_selects(self, spec: dict[str, Any], region: str, ami: str) -> bool:
        """Whether a source filter (owners, name pattern) selects ``ami``,
        asked of EC2 as :meth:`resolve_source` asks it."""
        return bool(self._matching(f"checking source {ami} against its filter", spec, region,
                                   {"Name": "image-id", "Values": [ami]}))

    def _matching(self, what: str, spec: dict[str, Any], region: str,
                  also: dict[str, Any]) -> list[dict]:
        return self.call(what, "ec2", region, "describe_images", Owners=spec["owners"],
                         Filters=[{"Name": "name", "Values": [spec["name_pattern"]]},
                                  also])["Images"]

    def ssm_values(self, region: str, names: list[str]) -> dict[str, str]:
        """Name -> value of those of these SSM parameters that exist, ten per call."""
        found: dict[str, str] = {}
        for i in range(0, len(names), 10):
            answer = self.call("reading SSM parameters", "ssm", region, "get_parameters",
                               Names=names[i:i + 10])
            found.update({p["Name"]: p["Value"] for p in answer.get("Parameters", [])})
        return found

    def delete_ssm(self, region: str, name: str) -> None:
        """Remove an SSM parameter; one already gone is no error."""
        try:
            self.client("ssm", region).delete_parameter(Name=name)
        except aws_errors() as err:
            if error_code(err) != "ParameterNotFound":
                raise explain(err, f"deleting SSM parameter {name}") from None

    def put_ssm_ami(self, region: str, name: str, ami: str) -> None:
        """The channel's current id as an SSM parameter of type aws:ec2:image,
        so launch templates can say resolve:ssm:<name>."""
        self.call(f"writing SSM parameter {name}", "ssm", region, "put_parameter",
                  Name=name, Value=ami, Type="String", DataType="aws:ec2:image", Overwrite=True)
