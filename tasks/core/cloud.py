"""What EC2 says of AMIs and of what launches them, as plain data: the EC2
port (``adapters.ec2``) returns these, its fake holds them, and the
decisions (``decision``, ``retention``) and checks read them. Nothing here
asks AWS."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Mapping

# Instance states in which an instance holds on to its AMI: it may start again.
LIVE_STATES = ("pending", "running", "stopping", "stopped")


def parse_time(value: object) -> datetime | None:
    """An EC2 timestamp (ISO 8601, ``Z`` or an offset), or None."""
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


@dataclass(frozen=True)
class Ami:
    """One AMI in one region, as DescribeImages describes it."""
    id: str
    region: str
    state: str = "available"          # available, pending, disabled, failed, ...
    owner: str = ""
    name: str = ""
    created: datetime | None = None
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    snapshots: tuple[str, ...] = ()
    deprecated_at: datetime | None = None

    @property
    def available(self) -> bool:
        return self.state == "available"


@dataclass(frozen=True)
class Grant:
    """Who may launch an AMI, or create volumes from a snapshot: a ``UserId``
    (an account), a ``Group`` (``all``: everyone), an ``OrganizationArn`` or
    an ``OrganizationalUnitArn``."""
    kind: str
    who: str

    def shown(self) -> str:
        return "everyone" if self.kind == "Group" and self.who == "all" else self.who


@dataclass(frozen=True)
class Instance:
    id: str
    ami: str
    state: str
    launched: datetime | None = None
    key_name: str = ""
    security_groups: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    address: str = ""               # its public IP, else its private one


@dataclass(frozen=True)
class Launch:
    """One instance to launch, to test an AMI: IMDSv2 is always required."""
    ami: str
    instance_type: str
    key_name: str
    tags: Mapping[str, str]
    subnet: str | None = None
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class LaunchTemplateVersion:
    """A launch template version, and the AMI it launches as written: an id,
    ``resolve:ssm:<name>`` (with ``:version`` or ``:label``), or empty."""
    template: str
    template_id: str
    version: int
    image: str


@dataclass(frozen=True)
class Launcher:
    """Something else that launches an AMI by id: a launch configuration, a
    Spot request, a Spot Fleet or EC2 Fleet, an Auto Scaling group."""
    kind: str                      # what it is, as people call it
    name: str
    image: str


@dataclass(frozen=True)
class KeyPair:
    name: str
    created: datetime | None = None


@dataclass(frozen=True)
class SecurityGroup:
    id: str
    name: str
