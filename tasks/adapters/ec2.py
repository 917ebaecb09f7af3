"""The EC2 port: every EC2 (and Auto Scaling) call the tool makes, as typed
methods. :class:`Ec2` is what the rest of the code asks for; :class:`BotoEc2`
is the real adapter on a run's AWS session, and ``fakes.FakeEc2`` holds the
same things in memory. EC2 operation names appear here and nowhere else.

Each method takes the region it asks in. A failure is one AmiError line
saying what was being done (``aws.explain``).
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any, Iterable, Protocol

from ..core.cloud import (LIVE_STATES, Ami, Grant, Instance, KeyPair, Launch, Launcher,
                          LaunchTemplateVersion, SecurityGroup, parse_time)
from ..core.errors import AmiError, FAILED
from ..core.names import MANAGED_BY
from .aws import AwsSession

BATCH = 200                       # image ids per DescribeImages filter
# Fleets that will launch nothing more (a cancelled_running one's instances are
# instances, and are listed as such).
_ENDED_FLEET = frozenset({"cancelled", "cancelled_running", "cancelled_terminating", "deleted",
                          "deleted_running", "deleted_terminating", "failed"})


class Ec2(Protocol):
    # -- AMIs ------------------------------------------------------------------
    def describe(self, region: str, amis: Iterable[str], *, own: bool = False) -> dict[str, Ami]:
        """Those of these AMIs that exist (disabled ones too); with ``own``,
        only the account's own."""

    def matching(self, region: str, owners: Iterable[str], name_pattern: str,
                 ami: str | None = None) -> list[Ami]:
        """Available AMIs of these owners whose name matches the pattern
        (EC2's wildcards); with ``ami``, only that one if it matches."""

    def managed(self, region: str) -> list[Ami]:
        """The account's AMIs tagged ManagedBy by this tool (disabled ones too)."""

    def tag(self, region: str, resource: str, tags: dict[str, str]) -> None: ...

    def require_imdsv2(self, region: str, instance: str) -> None:
        """IMDSv2 on a running instance, before anything is provisioned."""

    def harden(self, region: str, ami: str) -> None:
        """IMDSv2 required on every instance launched from the AMI."""

    def launch_grants(self, region: str, ami: str) -> list[Grant]: ...

    def snapshot_users(self, region: str, snapshots: Iterable[str]) -> dict[str, set[str]]:
        """Snapshot -> every AMI of the account whose volumes are made from it."""

    def revoke_launch_grants(self, region: str, ami: str, grants: list[Grant]) -> None: ...

    def volume_grants(self, region: str, snapshot: str) -> list[Grant]: ...

    def revoke_volume_grant(self, region: str, snapshot: str, grant: Grant) -> None: ...

    def deregister(self, region: str, ami: str, snapshots: Iterable[str] = ()) -> None:
        """Deregister the AMI, then delete its snapshots."""

    def deprecate(self, region: str, ami: str, at: datetime) -> str | None:
        """EnableImageDeprecation. None when done; the call's name when the
        endpoint does not have it (an emulator)."""

    def end_deprecation(self, region: str, ami: str) -> str | None: ...

    def disable(self, region: str, ami: str) -> str | None: ...

    def enable(self, region: str, ami: str) -> str | None: ...

    # -- what launches AMIs -------------------------------------------------------
    def instances(self, region: str) -> list[Instance]:
        """Instances that may still run: pending, running, stopping, stopped."""

    def launch_template_versions(self, region: str) -> list[LaunchTemplateVersion]: ...

    def launchers(self, region: str) -> list[Launcher]:
        """Launch configurations, and anything else that launches by AMI id."""

    # -- what Packer leaves behind ---------------------------------------------------
    def key_pairs(self, region: str) -> list[KeyPair]: ...

    def security_groups(self, region: str) -> list[SecurityGroup]: ...

    def terminate(self, region: str, instance: str) -> None: ...

    def delete_key_pair(self, region: str, name: str) -> None: ...

    def delete_security_group(self, region: str, group: SecurityGroup) -> None: ...

    # -- what the acceptance stage launches ----------------------------------------
    def create_key_pair(self, region: str, name: str, tags: dict[str, str]) -> str:
        """A new ed25519 key pair; returns its private key (OpenSSH PEM)."""

    def create_security_group(self, region: str, name: str, subnet: str | None,
                              tags: dict[str, str]) -> SecurityGroup:
        """A group in the subnet's VPC (else the default VPC) that lets SSH in."""

    def launch(self, region: str, launch: Launch) -> str:
        """Run one instance (IMDSv2 required); returns its id."""

    def instance(self, region: str, instance: str) -> Instance | None:
        """The instance as EC2 describes it now (terminated ones too); None: unknown."""


def _tags(item: dict) -> MappingProxyType:
    return MappingProxyType({t["Key"]: t["Value"] for t in item.get("Tags", [])})


def _tag_spec(kind: str, tags: dict[str, str]) -> dict[str, Any]:
    return {"ResourceType": kind, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}


def _instance(i: dict) -> Instance:
    return Instance(id=i["InstanceId"], ami=i.get("ImageId", ""),
                    state=i.get("State", {}).get("Name", ""),
                    launched=parse_time(i.get("LaunchTime")), key_name=i.get("KeyName", ""),
                    security_groups=tuple(g["GroupName"] for g in i.get("SecurityGroups", [])),
                    tags=_tags(i),
                    address=i.get("PublicIpAddress") or i.get("PrivateIpAddress") or "")


def ami_of(region: str, image: dict) -> Ami:
    """An EC2 image description as an :class:`Ami`."""
    return Ami(id=image["ImageId"], region=region, state=str(image.get("State", "available")),
               owner=str(image.get("OwnerId", "")), name=str(image.get("Name", "")),
               created=parse_time(image.get("CreationDate")), tags=_tags(image),
               snapshots=tuple(m["Ebs"]["SnapshotId"]
                               for m in image.get("BlockDeviceMappings", [])
                               if m.get("Ebs", {}).get("SnapshotId")),
               deprecated_at=parse_time(image.get("DeprecationTime")))


def _grant(grant: dict) -> Grant:
    for kind in ("Group", "UserId", "OrganizationArn", "OrganizationalUnitArn"):
        if grant.get(kind):
            return Grant(kind, str(grant[kind]))
    return Grant("unknown", str(grant))


class BotoEc2:
    """The EC2 port on a run's AWS session (botocore clients, made on first use)."""

    def __init__(self, aws: AwsSession) -> None:
        self.aws = aws

    def _call(self, what: str, region: str, operation: str, **kwargs: Any) -> Any:
        return self.aws.call(what, "ec2", region, operation, **kwargs)

    def describe(self, region: str, amis: Iterable[str], *, own: bool = False) -> dict[str, Ami]:
        wanted = sorted(set(amis))
        found: dict[str, Ami] = {}
        for i in range(0, len(wanted), BATCH):
            batch = wanted[i:i + BATCH]
            images = self._call(
                f"looking up recorded AMIs in {region}" if own
                else f"describing {', '.join(batch[:5])}{' …' if len(batch) > 5 else ''} "
                     f"in {region}", region, "describe_images",
                **({"Owners": ["self"]} if own else {}), IncludeDisabled=True,
                Filters=[{"Name": "image-id", "Values": batch}])["Images"]
            found.update({img["ImageId"]: ami_of(region, img) for img in images})
        return found

    def matching(self, region: str, owners: Iterable[str], name_pattern: str,
                 ami: str | None = None) -> list[Ami]:
        also = {"Name": "image-id", "Values": [ami]} if ami else \
            {"Name": "state", "Values": ["available"]}
        images = self._call(f"checking source {ami} against its filter" if ami
                            else f"finding source images named {name_pattern!r}", region,
                            "describe_images", Owners=list(owners),
                            Filters=[{"Name": "name", "Values": [name_pattern]}, also])["Images"]
        return [ami_of(region, img) for img in images]

    def managed(self, region: str) -> list[Ami]:
        images = self._call(f"listing AMIs in {region}", region, "describe_images",
                            Owners=["self"], IncludeDisabled=True,
                            Filters=[{"Name": "tag:ManagedBy", "Values": [MANAGED_BY]}])["Images"]
        return [ami_of(region, img) for img in images]

    def tag(self, region: str, resource: str, tags: dict[str, str]) -> None:
        self._call(f"tagging {resource} ({region})", region, "create_tags", Resources=[resource],
                   Tags=[{"Key": k, "Value": v} for k, v in tags.items()])

    def require_imdsv2(self, region: str, instance: str) -> None:
        self._call(f"requiring IMDSv2 on build instance {instance}", region,
                   "modify_instance_metadata_options", InstanceId=instance,
                   HttpTokens="required", HttpEndpoint="enabled")

    def harden(self, region: str, ami: str) -> None:
        self._call(f"hardening {ami} in {region}", region, "modify_image_attribute",
                   ImageId=ami, ImdsSupport={"Value": "v2.0"})

    def launch_grants(self, region: str, ami: str) -> list[Grant]:
        found = self._call(f"reading launch permissions of {ami}", region,
                           "describe_image_attribute", ImageId=ami,
                           Attribute="launchPermission").get("LaunchPermissions", [])
        return [_grant(g) for g in found]

    def revoke_launch_grants(self, region: str, ami: str, grants: list[Grant]) -> None:
        self._call(f"revoking launch permissions of {ami}", region, "modify_image_attribute",
                   ImageId=ami, LaunchPermission={"Remove": [{g.kind: g.who} for g in grants]})

    def snapshot_users(self, region: str, snapshots: Iterable[str]) -> dict[str, set[str]]:
        users: dict[str, set[str]] = {s: set() for s in snapshots}
        if not users:
            return users
        # Every AMI of the account, read once: the snapshot-id filter is not
        # one every endpoint has.
        for image in self.aws.pages(f"listing the account's AMIs in {region}", "ec2", region,
                                    "describe_images", "Images", Owners=["self"],
                                    IncludeDisabled=True):
            for m in image.get("BlockDeviceMappings", []):
                snapshot = m.get("Ebs", {}).get("SnapshotId")
                if snapshot in users:
                    users[snapshot].add(image["ImageId"])
        return users

    def volume_grants(self, region: str, snapshot: str) -> list[Grant]:
        found = self._call(f"reading create-volume permissions of {snapshot}", region,
                           "describe_snapshot_attribute", SnapshotId=snapshot,
                           Attribute="createVolumePermission").get("CreateVolumePermissions", [])
        return [_grant(g) for g in found]

    def revoke_volume_grant(self, region: str, snapshot: str, grant: Grant) -> None:
        who = {"GroupNames": [grant.who]} if grant.kind == "Group" else {"UserIds": [grant.who]}
        self._call(f"revoking create-volume permission of {snapshot}", region,
                   "modify_snapshot_attribute", SnapshotId=snapshot,
                   Attribute="createVolumePermission", OperationType="remove", **who)

    def deregister(self, region: str, ami: str, snapshots: Iterable[str] = ()) -> None:
        self._call(f"deregistering {ami}", region, "deregister_image", ImageId=ami)
        for snap in snapshots:
            self._call(f"deleting snapshot {snap}", region, "delete_snapshot", SnapshotId=snap)

    def _if_known(self, what: str, region: str, operation: str, name: str,
                  **kwargs: Any) -> str | None:
        return None if self.aws.call_if_known(what, "ec2", region, operation, **kwargs) else name

    def deprecate(self, region: str, ami: str, at: datetime) -> str | None:
        return self._if_known(f"deprecating {ami} ({region})", region,
                              "enable_image_deprecation", "EnableImageDeprecation",
                              ImageId=ami, DeprecateAt=at)

    def end_deprecation(self, region: str, ami: str) -> str | None:
        return self._if_known(f"ending the deprecation of {ami} ({region})", region,
                              "disable_image_deprecation", "DisableImageDeprecation",
                              ImageId=ami)

    def disable(self, region: str, ami: str) -> str | None:
        return self._if_known(f"disabling {ami} ({region})", region, "disable_image",
                              "DisableImage", ImageId=ami)

    def enable(self, region: str, ami: str) -> str | None:
        return self._if_known(f"enabling {ami} ({region})", region, "enable_image",
                              "EnableImage", ImageId=ami)

    def instances(self, region: str) -> list[Instance]:
        found = self.aws.pages(f"listing instances in {region}", "ec2", region,
                               "describe_instances", "Reservations",
                               Filters=[{"Name": "instance-state-name",
                                         "Values": list(LIVE_STATES)}])
        return [_instance(i) for reservation in found for i in reservation["Instances"]]

    def launch_template_versions(self, region: str) -> list[LaunchTemplateVersion]:
        out = []
        for template in self.aws.pages(f"listing launch templates in {region}", "ec2", region,
                                       "describe_launch_templates", "LaunchTemplates"):
            name = template["LaunchTemplateName"]
            for version in self.aws.pages(
                    f"listing the versions of launch template {name} in {region}", "ec2",
                    region, "describe_launch_template_versions", "LaunchTemplateVersions",
                    LaunchTemplateId=template["LaunchTemplateId"], Versions=[]):
                out.append(LaunchTemplateVersion(
                    name, template["LaunchTemplateId"], int(version["VersionNumber"]),
                    str(version.get("LaunchTemplateData", {}).get("ImageId", ""))))
        return out

    def launchers(self, region: str) -> list[Launcher]:
        """Launch configurations; Spot Fleet requests, Spot requests, EC2
        Fleets and AWS Batch compute environments that may still launch
        (their AMIs named outright; those that name a launch template are
        covered by its versions)."""
        found = [Launcher("launch configuration", c["LaunchConfigurationName"], c["ImageId"])
                 for c in self.aws.pages(f"listing launch configurations in {region}",
                                         "autoscaling", region, "describe_launch_configurations",
                                         "LaunchConfigurations")]
        for fleet in self.aws.pages(f"listing Spot Fleet requests in {region}", "ec2", region,
                                    "describe_spot_fleet_requests", "SpotFleetRequestConfigs"):
            if fleet.get("SpotFleetRequestState") in _ENDED_FLEET:
                continue
            config = fleet.get("SpotFleetRequestConfig", {})
            images = [spec.get("ImageId") for spec in config.get("LaunchSpecifications", [])]
            images += [o.get("ImageId") for c in config.get("LaunchTemplateConfigs", [])
                       for o in c.get("Overrides", [])]
            found += [Launcher("Spot Fleet request", fleet["SpotFleetRequestId"], image)
                      for image in images if image]
        for request in self.aws.pages(f"listing Spot requests in {region}", "ec2", region,
                                      "describe_spot_instance_requests", "SpotInstanceRequests",
                                      Filters=[{"Name": "state", "Values": ["open", "active"]}]):
            image = request.get("LaunchSpecification", {}).get("ImageId")
            if image:
                found.append(Launcher(f"{request.get('Type', 'one-time')} Spot request",
                                      request["SpotInstanceRequestId"], image))
        for env in self.aws.pages(f"listing AWS Batch compute environments in {region}",
                                  "batch", region, "describe_compute_environments",
                                  "computeEnvironments"):
            resources = env.get("computeResources") or {}
            images = [resources.get("imageId")] + [
                c.get("imageIdOverride") for c in resources.get("ec2Configuration") or []]
            found += [Launcher("AWS Batch compute environment", env["computeEnvironmentName"],
                               image) for image in images if image]
        for fleet in self.aws.pages(f"listing EC2 Fleets in {region}", "ec2", region,
                                    "describe_fleets", "Fleets"):
            if fleet.get("FleetState") in _ENDED_FLEET:
                continue
            found += [Launcher("EC2 Fleet", fleet["FleetId"], o["ImageId"])
                      for c in fleet.get("LaunchTemplateConfigs", [])
                      for o in c.get("Overrides", []) if o.get("ImageId")]
        return found

    def key_pairs(self, region: str) -> list[KeyPair]:
        return [KeyPair(p["KeyName"], parse_time(p.get("CreateTime")))
                for p in self._call(f"listing key pairs in {region}", region,
                                    "describe_key_pairs")["KeyPairs"]]

    def security_groups(self, region: str) -> list[SecurityGroup]:
        return [SecurityGroup(g["GroupId"], g["GroupName"])
                for g in self.aws.pages(f"listing security groups in {region}", "ec2", region,
                                        "describe_security_groups", "SecurityGroups")]

    def terminate(self, region: str, instance: str) -> None:
        self._call(f"terminating {instance}", region, "terminate_instances",
                   InstanceIds=[instance])

    def delete_key_pair(self, region: str, name: str) -> None:
        self._call(f"deleting key pair {name}", region, "delete_key_pair", KeyName=name)

    def delete_security_group(self, region: str, group: SecurityGroup) -> None:
        self._call(f"deleting {group.id}", region, "delete_security_group", GroupId=group.id)

    def create_key_pair(self, region: str, name: str, tags: dict[str, str]) -> str:
        made = self._call(f"creating key pair {name} in {region}", region, "create_key_pair",
                          KeyName=name, KeyType="ed25519",
                          TagSpecifications=[_tag_spec("key-pair", tags)])
        return str(made["KeyMaterial"])

    def create_security_group(self, region: str, name: str, subnet: str | None,
                              tags: dict[str, str]) -> SecurityGroup:
        if subnet:
            vpc = self._call(f"describing {subnet} in {region}", region, "describe_subnets",
                             SubnetIds=[subnet])["Subnets"][0]["VpcId"]
        else:
            vpcs = self._call(f"finding the default VPC in {region}", region, "describe_vpcs",
                              Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
            if not vpcs:
                raise AmiError(f"{region} has no default VPC to test in: set test_subnet (and "
                               "test_security_group) on the image in amis.yaml", code=FAILED)
            vpc = vpcs[0]["VpcId"]
        made = self._call(f"creating security group {name} in {region}", region,
                          "create_security_group", GroupName=name, VpcId=vpc,
                          Description="SSH to an instance testing a new AMI (temporary)",
                          TagSpecifications=[_tag_spec("security-group", tags)])
        group = SecurityGroup(made["GroupId"], name)
        self._call(f"letting SSH into {group.id}", region, "authorize_security_group_ingress",
                   GroupId=group.id, IpPermissions=[{
                       "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
                       "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        return group

    def launch(self, region: str, launch: Launch) -> str:
        made = self._call(
            f"launching {launch.ami} to test it", region, "run_instances",
            ImageId=launch.ami, InstanceType=launch.instance_type, MinCount=1, MaxCount=1,
            KeyName=launch.key_name, MetadataOptions={"HttpTokens": "required",
                                                      "HttpEndpoint": "enabled"},
            TagSpecifications=[_tag_spec("instance", dict(launch.tags)),
                               _tag_spec("volume", dict(launch.tags))],
            **({"SubnetId": launch.subnet} if launch.subnet else {}),
            **({"SecurityGroupIds": list(launch.security_groups)}
               if launch.security_groups else {}))
        return str(made["Instances"][0]["InstanceId"])

    def instance(self, region: str, instance: str) -> Instance | None:
        found = self._call(f"describing {instance}", region, "describe_instances",
                           Filters=[{"Name": "instance-id", "Values": [instance]}])
        for reservation in found["Reservations"]:
            for i in reservation["Instances"]:
                return _instance(i)
        return None
