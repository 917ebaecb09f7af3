"""boto3 clients and the few EC2/S3 calls the tree needs.

boto3 is imported on first use only: ``doit list`` never pays for it.
Clients are created once per run and shared by threads (boto3 clients are
thread-safe). Every AWS failure becomes one AmiError line.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from . import emulator
from .config import Settings, require_bucket
from .errors import AmiError
from .graph import Source

SANDBOX_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}



class Unreachable(AmiError):
    """AWS could not be asked at all: no credentials, no network."""


_lock = threading.Lock()
_clients: dict[tuple[str, str], Any] = {}
_session: list[Any] = []        # one boto3 session: service models are loaded once
_endpoint: dict[str, str | None] = {}
_bucket_checked: set[str] = set()


def endpoint(settings: Settings) -> str | None:
    """Where AWS calls go: AWS_ENDPOINT_URL, the sandbox emulator, or AWS."""
    if settings.endpoint or not settings.sandbox:
        return settings.endpoint
    with _lock:
        if "url" not in _endpoint:
            _endpoint["url"] = emulator.ensure(settings.root, settings.state)
        return _endpoint["url"]


def subprocess_env(settings: Settings) -> dict[str, str]:
    """Environment for Packer: the user's, plus dummy credentials in the sandbox
    so real ones are never sent to the emulator."""
    env = dict(os.environ)
    env.setdefault("CHECKPOINT_DISABLE", "1")    # no version check call home from Packer
    url = endpoint(settings)
    if url:
        env["AWS_ENDPOINT_URL"] = url            # provisioners' AWS calls go there too
    if settings.sandbox:
        env.update(SANDBOX_CREDENTIALS)
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
    return env


def client(settings: Settings, service: str, region: str) -> Any:
    url = endpoint(settings)
    with _lock:
        key = (service, region)
        if key not in _clients:
            import boto3
            from botocore.config import Config

            kwargs: dict[str, Any] = {
                "region_name": region,
                "config": Config(retries={"mode": "standard", "max_attempts": 5},
                                 connect_timeout=5, read_timeout=30,
                                 max_pool_connections=32),
            }
            if url:
                kwargs["endpoint_url"] = url
            if settings.sandbox:
                kwargs["aws_access_key_id"] = SANDBOX_CREDENTIALS["AWS_ACCESS_KEY_ID"]
                kwargs["aws_secret_access_key"] = SANDBOX_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
            if not _session:
                _session.append(boto3.session.Session())
            _clients[key] = _session[0].client(service, **kwargs)
        return _clients[key]


def error_code(err: Exception) -> str:
    response = getattr(err, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def explain(err: Exception, what: str) -> AmiError:
    """One line for an AWS failure, saying what we were doing and what to do."""
    from botocore.exceptions import (ClientError, EndpointConnectionError,
                                     NoCredentialsError, NoRegionError)

    if isinstance(err, NoCredentialsError):
        return Unreachable(f"{what}: no AWS credentials found: configure them "
                        "(AWS_PROFILE, instance role) or set AMI_SANDBOX=1")
    if isinstance(err, NoRegionError):
        return AmiError(f"{what}: no AWS region: set AWS_REGION")
    if isinstance(err, EndpointConnectionError):
        return Unreachable(f"{what}: cannot reach {err.kwargs.get('endpoint_url', 'AWS')}: "
                        "check the network or AWS_ENDPOINT_URL")
    if isinstance(err, ClientError):
        code = error_code(err)
        hint = {
            "NoSuchBucket": "create the bucket or fix AMI_BUCKET",
            "AccessDenied": "grant the build role access (see README, IAM policy)",
            "403": "grant the build role access (see README, IAM policy)",
            "404": "create the bucket or fix AMI_BUCKET",
        }.get(code, "see the AWS error above")
        message = err.response.get("Error", {}).get("Message") or code
        return AmiError(f"{what}: {code}: {message}: {hint}")
    return AmiError(f"{what}: {type(err).__name__}: {err}")


def aws_errors() -> tuple[type[Exception], ...]:
    from botocore.exceptions import BotoCoreError, ClientError
    return (BotoCoreError, ClientError)


def check_bucket(settings: Settings, region: str) -> None:
    """The bucket must exist and be ours to read; the sandbox creates its own."""
    bucket = require_bucket(settings)
    if bucket in _bucket_checked:
        return
    s3 = client(settings, "s3", region)
    try:
        s3.head_bucket(Bucket=bucket)
    except aws_errors() as err:
        if settings.sandbox and error_code(err) in {"404", "NoSuchBucket"}:
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
    _bucket_checked.add(bucket)


def ami_exists(settings: Settings, ami: str, region: str) -> bool:
    return ami in existing_amis(settings, region, [ami])


def require_imdsv2(settings: Settings, region: str, instance: str) -> None:
    """IMDSv2 on the build instance, before anything is provisioned
    (Packer 1.6 has no metadata_options)."""
    ec2 = client(settings, "ec2", region)
    try:
        ec2.modify_instance_metadata_options(InstanceId=instance, HttpTokens="required",
                                             HttpEndpoint="enabled")
    except aws_errors() as err:
        raise explain(err, f"requiring IMDSv2 on build instance {instance}") from None


def existing_amis(settings: Settings, region: str, amis: list[str]) -> set[str]:
    """Which of these AMI ids exist (and are available), in one call per 200."""
    ec2 = client(settings, "ec2", region)
    found: set[str] = set()
    for i in range(0, len(amis), 200):
        try:
            images = ec2.describe_images(
                Filters=[{"Name": "image-id", "Values": amis[i:i + 200]}])["Images"]
        except aws_errors() as err:
            raise explain(err, f"looking up recorded AMIs in {region}") from None
        found |= {img["ImageId"] for img in images if img.get("State") == "available"}
    return found


def resolve_source(settings: Settings, source: Source, region: str) -> tuple[str, str]:
    """The source's AMI id and how it was found."""
    spec = source.spec(settings.sandbox)
    if "ami" in spec:
        return spec["ami"], "pinned"
    ec2 = client(settings, "ec2", region)
    try:
        images = ec2.describe_images(
            Owners=spec["owners"],
            Filters=[{"Name": "name", "Values": [spec["name_pattern"]]},
                     {"Name": "state", "Values": ["available"]}],
        )["Images"]
    except aws_errors() as err:
        raise explain(err, f"resolving source {source.name}") from None
    if not images:
        raise AmiError(f"source {source.name}: no image of owners {spec['owners']} matches "
                       f"{spec['name_pattern']!r} in {region}: fix the filter in amis.yaml")
    newest = max(images, key=lambda i: (i.get("CreationDate", ""), i["ImageId"]))
    return newest["ImageId"], f"newest of {spec['name_pattern']!r}: {newest.get('Name', '')}"


def harden_amis(settings: Settings, amis: dict[str, str]) -> list[str]:
    """After a build: require IMDSv2 on instances launched from each AMI
    (Packer 1.6 cannot set it) and make sure none is public. A public AMI is
    made private at once and reported; the caller publishes nothing then."""
    public = []
    for region, ami in amis.items():
        ec2 = client(settings, "ec2", region)
        try:
            ec2.modify_image_attribute(ImageId=ami, ImdsSupport={"Value": "v2.0"})
            grants = ec2.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
            if any(g.get("Group") == "all" for g in grants.get("LaunchPermissions", [])):
                ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Remove": [{"Group": "all"}]})
                public.append(f"{region}:{ami}")
        except aws_errors() as err:
            raise explain(err, f"hardening {ami} in {region}") from None
    return public


def put_ssm_ami(settings: Settings, region: str, name: str, ami: str) -> None:
    """The channel's current id as an SSM parameter of type aws:ec2:image,
    so launch templates can say resolve:ssm:<name>."""
    ssm = client(settings, "ssm", region)
    try:
        ssm.put_parameter(Name=name, Value=ami, Type="String", DataType="aws:ec2:image",
                          Overwrite=True)
    except aws_errors() as err:
        raise explain(err, f"writing SSM parameter {name}") from None
