"""The SSM port: the parameters a channel's AMI ids are published as, and
what a launch template's ``resolve:ssm:`` reference names. :class:`BotoSsm`
is the real adapter; ``fakes.FakeSsm`` keeps parameters and their versions
in memory."""

from __future__ import annotations

from typing import Iterable, Protocol

from .aws import AwsSession, aws_errors, error_code, explain


class Ssm(Protocol):
    def values(self, region: str, names: Iterable[str]) -> dict[str, str]:
        """Name -> value of those of these parameters that exist."""

    def value(self, region: str, name: str) -> str:
        """One parameter's value: the latest, or the version (``name:3``) or
        label (``name:golden``) it names, as EC2's ``resolve:ssm:`` reads it."""

    def put_ami(self, region: str, name: str, ami: str) -> None:
        """An AMI id, of type aws:ec2:image (launch templates may resolve it)."""

    def delete(self, region: str, name: str) -> None:
        """Remove a parameter; one already gone is no error."""


class BotoSsm:
    def __init__(self, aws: AwsSession) -> None:
        self.aws = aws

    def values(self, region: str, names: Iterable[str]) -> dict[str, str]:
        wanted = list(names)
        found: dict[str, str] = {}
        for i in range(0, len(wanted), 10):           # GetParameters takes ten at a time
            answer = self.aws.call("reading SSM parameters", "ssm", region, "get_parameters",
                                   Names=wanted[i:i + 10])
            found.update({p["Name"]: p["Value"] for p in answer.get("Parameters", [])})
        return found

    def value(self, region: str, name: str) -> str:
        return self.aws.call(f"reading SSM parameter {name}", "ssm", region, "get_parameter",
                             Name=name)["Parameter"]["Value"]

    def put_ami(self, region: str, name: str, ami: str) -> None:
        self.aws.call(f"writing SSM parameter {name}", "ssm", region, "put_parameter",
                      Name=name, Value=ami, Type="String", DataType="aws:ec2:image",
                      Overwrite=True)

    def delete(self, region: str, name: str) -> None:
        try:
            self.aws.client("ssm", region).delete_parameter(Name=name)
        except aws_errors() as err:
            if error_code(err) != "ParameterNotFound":
                raise explain(err, f"deleting SSM parameter {name}") from None
