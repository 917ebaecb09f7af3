"""AWS in memory: :class:`FakeEc2` (AMIs and their tags, launch and
create-volume permissions, instances, launch templates and their versions,
launch configurations and other launchers, key pairs, security groups,
deregistration), :class:`FakeSsm` (parameters and their versions and
labels), :class:`FakeKms` (signing keys) and :class:`FakeIdentity`.

Each implements its port as the real adapter does, and records the calls
it answered in ``calls``. ``fail[method] = AmiError(...)`` makes a method
fail (once per entry in the list, or every time for a bare error).
"""

from __future__ import annotations

import fnmatch
import itertools
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any, Callable, Iterable

from ...core.cloud import (LIVE_STATES, Ami, Grant, Instance, KeyPair, Launch, Launcher,
                           LaunchTemplateVersion, SecurityGroup)
from ...core.errors import AmiError, FAILED
from ...core.names import MANAGED_BY

ACCOUNT = "123456789012"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


class _Faults:
    """``fail[name]``: an AmiError raised every time, or a list raised one
    per call until it is empty."""

    def __init__(self) -> None:
        self.fail: dict[str, AmiError | list[AmiError]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self._lock = threading.RLock()

    def _call(self, name: str, *args: Any) -> None:
        with self._lock:
            self.calls.append((name, *args))
            planned = self.fail.get(name)
            if isinstance(planned, list):
                if planned:
                    raise planned.pop(0)
            elif planned is not None:
                raise planned


class FakeEc2(_Faults):
    """EC2 in memory, in any number of regions. ``now`` is EC2's clock
    (creation and launch times). ``lacking`` names calls the endpoint does
    not have, as an emulator lacks the deprecation calls."""

    def __init__(self, account: str = ACCOUNT, now: Callable[[], datetime] = _utc_now,
                 lacking: Iterable[str] = ()) -> None:
        super().__init__()
        self.account = account
        self.now = now
        self.lacking = set(lacking)
        self.images: dict[tuple[str, str], Ami] = {}
        self.launch_grant: dict[tuple[str, str], list[Grant]] = {}
        self.volume_grant: dict[tuple[str, str], list[Grant]] = {}
        self.hardened: set[tuple[str, str]] = set()
        self.imdsv2: set[tuple[str, str]] = set()             # instances
        self.snapshots: set[tuple[str, str]] = set()
        self.running: dict[str, list[Instance]] = {}
        self.templates: dict[str, list[LaunchTemplateVersion]] = {}
        self.others: dict[str, list[Launcher]] = {}
        self.keys: dict[str, list[KeyPair]] = {}
        self.groups: dict[str, list[SecurityGroup]] = {}
        self._ids = itertools.count(1)

    # -- arranging ------------------------------------------------------------

    def _id(self, prefix: str, width: int = 17) -> str:
        return f"{prefix}-{next(self._ids):0{width}x}"

    def add_ami(self, region: str, *, tags: dict[str, str] | None = None,
                created: datetime | None = None, owner: str | None = None,
                state: str = "available", name: str = "", snapshots: int = 1,
                ami: str | None = None) -> Ami:
        """An AMI of this account (or ``owner``'s) with ``snapshots`` snapshots."""
        snaps = tuple(self._id("snap") for _ in range(snapshots))
        self.snapshots |= {(region, s) for s in snaps}
        image = Ami(id=ami or self._id("ami"), region=region, state=state,
                    owner=owner or self.account, name=name, created=created or self.now(),
                    tags=MappingProxyType(dict(tags or {})), snapshots=snaps)
        self.images[region, image.id] = image
        return image

    def add_instance(self, region: str, ami: str, *, state: str = "running",
                     key_name: str = "", groups: tuple[str, ...] = (),
                     launched: datetime | None = None) -> Instance:
        instance = Instance(id=self._id("i"), ami=ami, state=state,
                            launched=launched or self.now(), key_name=key_name,
                            security_groups=groups)
        self.running.setdefault(region, []).append(instance)
        return instance

    def add_launch_template(self, region: str, name: str, *images: str) -> None:
        """A launch template whose versions 1, 2, ... launch these (an AMI id
        or ``resolve:ssm:<name>``)."""
        template_id = self._id("lt")
        self.templates.setdefault(region, []).extend(
            LaunchTemplateVersion(name, template_id, n, image)
            for n, image in enumerate(images, 1))

    def add_launcher(self, region: str, kind: str, name: str, image: str) -> None:
        self.others.setdefault(region, []).append(Launcher(kind, name, image))

    def add_key_pair(self, region: str, name: str, created: datetime | None = None) -> None:
        self.keys.setdefault(region, []).append(KeyPair(name, created or self.now()))

    def add_security_group(self, region: str, name: str) -> SecurityGroup:
        group = SecurityGroup(self._id("sg"), name)
        self.groups.setdefault(region, []).append(group)
        return group

    def share(self, region: str, ami: str, *grants: Grant) -> None:
        self.launch_grant.setdefault((region, ami), []).extend(grants)

    def ami(self, region: str, ami: str) -> Ami | None:
        return self.images.get((region, ami))

    def client(self, region: str) -> "_Client":
        """A boto3-like EC2 client for what ScriptedPacker does in a build."""
        return _Client(self, region)

    # -- the port -------------------------------------------------------------

    def describe(self, region: str, amis: Iterable[str], *, own: bool = False) -> dict[str, Ami]:
        wanted = sorted(set(amis))
        self._call("describe", region, tuple(wanted))
        found = {a: self.images[region, a] for a in wanted if (region, a) in self.images}
        return {a: i for a, i in found.items() if not own or i.owner == self.account}

    def matching(self, region: str, owners: Iterable[str], name_pattern: str,
                 ami: str | None = None) -> list[Ami]:
        self._call("matching", region, name_pattern, ami)
        owners = set(owners)
        return [i for (r, _), i in sorted(self.images.items()) if r == region
                and (i.owner in owners or ("self" in owners and i.owner == self.account))
                and fnmatch.fnmatchcase(i.name, name_pattern)
                and (i.id == ami if ami else i.available)]

    def managed(self, region: str) -> list[Ami]:
        self._call("managed", region)
        return [i for (r, _), i in sorted(self.images.items()) if r == region
                and i.owner == self.account and i.tags.get("ManagedBy") == MANAGED_BY]

    def tag(self, region: str, resource: str, tags: dict[str, str]) -> None:
        self._call("tag", region, resource, dict(tags))
        image = self.images.get((region, resource))
        if image is None:
            raise AmiError(f"tagging {resource} ({region}): InvalidAMIID.NotFound", FAILED)
        self.images[region, resource] = replace(
            image, tags=MappingProxyType({**image.tags, **tags}))

    def require_imdsv2(self, region: str, instance: str) -> None:
        self._call("require_imdsv2", region, instance)
        self.imdsv2.add((region, instance))

    def harden(self, region: str, ami: str) -> None:
        self._call("harden", region, ami)
        self.hardened.add((region, ami))

    def launch_grants(self, region: str, ami: str) -> list[Grant]:
        self._call("launch_grants", region, ami)
        return list(self.launch_grant.get((region, ami), []))

    def revoke_launch_grants(self, region: str, ami: str, grants: list[Grant]) -> None:
        self._call("revoke_launch_grants", region, ami, tuple(grants))
        left = [g for g in self.launch_grant.get((region, ami), []) if g not in grants]
        self.launch_grant[region, ami] = left

    def snapshot_users(self, region: str, snapshots: Iterable[str]) -> dict[str, set[str]]:
        self._call("snapshot_users", region)
        return {s: {a.id for (r, _), a in self.images.items() if r == region
                    and a.owner == self.account and s in a.snapshots} for s in snapshots}

    def volume_grants(self, region: str, snapshot: str) -> list[Grant]:
        self._call("volume_grants", region, snapshot)
        return list(self.volume_grant.get((region, snapshot), []))

    def revoke_volume_grant(self, region: str, snapshot: str, grant: Grant) -> None:
        self._call("revoke_volume_grant", region, snapshot, grant)
        self.volume_grant[region, snapshot] = [
            g for g in self.volume_grant.get((region, snapshot), []) if g != grant]

    def deregister(self, region: str, ami: str, snapshots: Iterable[str] = ()) -> None:
        self._call("deregister", region, ami)
        if self.images.pop((region, ami), None) is None:
            raise AmiError(f"deregistering {ami}: InvalidAMIID.NotFound", FAILED)
        for snap in snapshots:
            self._call("delete_snapshot", region, snap)
            self.snapshots.discard((region, snap))

    def _lacks(self, name: str, region: str, ami: str) -> str | None:
        self._call(name, region, ami)
        return name if name in self.lacking else None

    def _set_state(self, region: str, ami: str, **changes: Any) -> None:
        image = self.images.get((region, ami))
        if image is None:
            raise AmiError(f"{ami} ({region}): InvalidAMIID.NotFound", FAILED)
        self.images[region, ami] = replace(image, **changes)

    def deprecate(self, region: str, ami: str, at: datetime) -> str | None:
        if self._lacks("EnableImageDeprecation", region, ami) is None:
            self._set_state(region, ami, deprecated_at=at)
            return None
        return "EnableImageDeprecation"

    def end_deprecation(self, region: str, ami: str) -> str | None:
        if self._lacks("DisableImageDeprecation", region, ami) is None:
            self._set_state(region, ami, deprecated_at=None)
            return None
        return "DisableImageDeprecation"

    def disable(self, region: str, ami: str) -> str | None:
        if self._lacks("DisableImage", region, ami) is None:
            self._set_state(region, ami, state="disabled")
            return None
        return "DisableImage"

    def enable(self, region: str, ami: str) -> str | None:
        if self._lacks("EnableImage", region, ami) is None:
            self._set_state(region, ami, state="available")
            return None
        return "EnableImage"

    def instances(self, region: str) -> list[Instance]:
        self._call("instances", region)
        return [i for i in self.running.get(region, []) if i.state in LIVE_STATES]

    def launch_template_versions(self, region: str) -> list[LaunchTemplateVersion]:
        self._call("launch_template_versions", region)
        return list(self.templates.get(region, []))

    def launchers(self, region: str) -> list[Launcher]:
        self._call("launchers", region)
        return list(self.others.get(region, []))

    def key_pairs(self, region: str) -> list[KeyPair]:
        self._call("key_pairs", region)
        return list(self.keys.get(region, []))

    def security_groups(self, region: str) -> list[SecurityGroup]:
        self._call("security_groups", region)
        return list(self.groups.get(region, []))

    def terminate(self, region: str, instance: str) -> None:
        self._call("terminate", region, instance)
        self.running[region] = [replace(i, state="terminated") if i.id == instance else i
                                for i in self.running.get(region, [])]

    def delete_key_pair(self, region: str, name: str) -> None:
        self._call("delete_key_pair", region, name)
        self.keys[region] = [k for k in self.keys.get(region, []) if k.name != name]

    def delete_security_group(self, region: str, group: SecurityGroup) -> None:
        self._call("delete_security_group", region, group.id)
        self.groups[region] = [g for g in self.groups.get(region, []) if g.id != group.id]

    def create_key_pair(self, region: str, name: str, tags: dict[str, str]) -> str:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        self._call("create_key_pair", region, name)
        self.add_key_pair(region, name)
        return ed25519.Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()).decode()

    def create_security_group(self, region: str, name: str, subnet: str | None,
                              tags: dict[str, str]) -> SecurityGroup:
        self._call("create_security_group", region, name)
        return self.add_security_group(region, name)

    def launch(self, region: str, launch: Launch) -> str:
        self._call("launch", region, launch.ami)
        instance = self.add_instance(region, launch.ami, state="pending",
                                     key_name=launch.key_name, groups=launch.security_groups)
        made = replace(instance, tags=MappingProxyType(dict(launch.tags)),
                       address=f"10.0.0.{len(self.running[region])}")
        self.running[region][-1] = made
        self.imdsv2.add((region, made.id))
        return made.id

    def instance(self, region: str, instance: str) -> Instance | None:
        self._call("instance", region, instance)
        for i in self.running.get(region, []):
            if i.id == instance:
                if i.state == "pending":        # it starts as soon as it is looked at
                    i = replace(i, state="running")
                    self.running[region] = [i if x.id == instance else x
                                            for x in self.running[region]]
                return i
        return None


@dataclass
class _Client:
    """The few boto3 EC2 client calls a scripted build makes, on FakeEc2."""
    ec2: FakeEc2
    region: str

    def run_instances(self, ImageId: str, **_: Any) -> dict:
        instance = self.ec2.add_instance(self.region, ImageId, state="running")
        return {"Instances": [{"InstanceId": instance.id}]}

    def create_image(self, InstanceId: str, Name: str, **_: Any) -> dict:
        return {"ImageId": self.ec2.add_ami(self.region, name=Name).id}

    def create_tags(self, Resources: list[str], Tags: list[dict]) -> None:
        for resource in Resources:
            self.ec2.tag(self.region, resource, {t["Key"]: t["Value"] for t in Tags})

    def terminate_instances(self, InstanceIds: list[str]) -> None:
        for instance in InstanceIds:
            self.ec2.terminate(self.region, instance)

    def copy_image(self, SourceImageId: str, SourceRegion: str, Name: str, **_: Any) -> dict:
        if (SourceRegion, SourceImageId) not in self.ec2.images:
            raise AmiError(f"copying {SourceImageId}: InvalidAMIID.NotFound", FAILED)
        return {"ImageId": self.ec2.add_ami(self.region, name=Name).id}


class FakeSsm(_Faults):
    """Parameters by region and name, each with its versions (1, 2, ...)
    and labels."""

    def __init__(self) -> None:
        super().__init__()
        self.params: dict[tuple[str, str], list[str]] = {}
        self.labels: dict[tuple[str, str], dict[str, int]] = {}

    def put(self, region: str, name: str, value: str) -> int:
        versions = self.params.setdefault((region, name), [])
        versions.append(value)
        return len(versions)

    def label(self, region: str, name: str, label: str, version: int) -> None:
        self.labels.setdefault((region, name), {})[label] = version

    def values(self, region: str, names: Iterable[str]) -> dict[str, str]:
        names = list(names)
        self._call("values", region, tuple(names))
        return {n: self.params[region, n][-1] for n in names if (region, n) in self.params}

    def value(self, region: str, name: str) -> str:
        self._call("value", region, name)
        base, _, selector = name.partition(":")
        versions = self.params.get((region, base))
        if not versions:
            raise AmiError(f"reading SSM parameter {name}: ParameterNotFound", FAILED)
        if not selector:
            return versions[-1]
        number = int(selector) if selector.isdigit() else \
            self.labels.get((region, base), {}).get(selector)
        if number is None or not 1 <= number <= len(versions):
            raise AmiError(f"reading SSM parameter {name}: ParameterVersionNotFound", FAILED)
        return versions[number - 1]

    def put_ami(self, region: str, name: str, ami: str) -> None:
        self._call("put_ami", region, name, ami)
        self.put(region, name, ami)

    def delete(self, region: str, name: str) -> None:
        self._call("delete", region, name)
        self.params.pop((region, name), None)
        self.labels.pop((region, name), None)


class FakeKms(_Faults):
    """ECC_NIST_P256 signing keys in memory, by key id and alias."""

    def __init__(self) -> None:
        super().__init__()
        self.keys: dict[str, Any] = {}
        self.usage: dict[str, str] = {}

    def create_key(self, *aliases: str, usage: str = "SIGN_VERIFY") -> str:
        from cryptography.hazmat.primitives.asymmetric import ec
        key_id = f"key-{len(self.keys) + 1:04d}"
        private = ec.generate_private_key(ec.SECP256R1())
        for name in (key_id, *aliases):
            self.keys[name] = private
            self.usage[name] = usage
        return key_id

    def _key(self, key_id: str) -> Any:
        if key_id not in self.keys:
            raise AmiError(f"KMS on {key_id}: NotFoundException: no such key", FAILED)
        return self.keys[key_id]

    def public_key(self, key_id: str) -> tuple[bytes, str]:
        from cryptography.hazmat.primitives import serialization
        self._call("public_key", key_id)
        der = self._key(key_id).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return der, self.usage[key_id]

    def sign(self, key_id: str, message: bytes, algorithm: str) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        self._call("sign", key_id, algorithm)
        return self._key(key_id).sign(message, ec.ECDSA(hashes.SHA256()))

    def ensure_key(self, alias: str) -> None:
        self._call("ensure_key", alias)
        if alias not in self.keys:
            self.create_key(alias)


@dataclass
class FakeIdentity:
    arn: str = f"arn:aws:iam::{ACCOUNT}:user/tester"
    calls: int = field(default=0)

    def caller(self) -> str:
        self.calls += 1
        return self.arn
