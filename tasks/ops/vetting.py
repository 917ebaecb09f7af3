"""What a build made, checked before it is published.

Each AMI Packer names must be this build's: tagged with this image and
digest (the runner adds those tags to every template) and created after
the build started; a Packer, or a wrapper, that names an existing AMI (the
parent's, an older build's) is not trusted. Each AMI is hardened (IMDSv2
required at launch) and may be shared, by launch permission or by its
snapshots' create-volume permission, only with the accounts the image
declares in ``share_with``: anything else is revoked and nothing is
published.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from ..adapters.aws import Aws, tags_of
from ..core.errors import AmiError, FAILED


def _grantee(grant: dict) -> tuple[str, str]:
    for key in ("Group", "UserId", "OrganizationArn", "OrganizationalUnitArn"):
        if grant.get(key):
            return key, grant[key]
    return "unknown", str(grant)


def _created(image: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(str(image.get("CreationDate", "")).replace("Z", "+00:00"))
    except ValueError:
        return None


def _made_by(found: dict, name: str, digest: str, started: datetime) -> bool:
    """Whether an AMI is this build's: its image and digest tags, created after it started."""
    tags = tags_of(found)
    created = _created(found)
    # EC2 keeps creation times to the second.
    return tags.get("Image") == name and tags.get("Digest") == digest and created is not None \
        and created >= started.replace(microsecond=0) - timedelta(seconds=1)


def vet(aws: Aws, name: str, share_with: tuple[str, ...], digest: str, started: datetime,
        amis: dict[str, str]) -> None:
    allowed = set(share_with)
    for region, ami in amis.items():
        found = aws.describe_amis(region, [ami]).get(ami)
        if found is None:
            raise AmiError(f"image {name}: Packer named {region}:{ami}, which does not exist; "
                           "nothing published", code=FAILED)
        if not _made_by(found, name, digest, started):
            tags = tags_of(found)
            raise AmiError(f"image {name}: Packer named {region}:{ami}, which this build did not "
                           f"make (tags Image={tags.get('Image')!r}, Digest="
                           f"{str(tags.get('Digest'))[:12]!r}, created {found.get('CreationDate')}); "
                           "nothing published", code=FAILED)
    shared = []
    for region, ami in amis.items():
        aws.call(f"hardening {ami} in {region}", "ec2", region, "modify_image_attribute",
                     ImageId=ami, ImdsSupport={"Value": "v2.0"})
        shared += _launch_grants(aws, region, ami, allowed)
        shared += _snapshot_grants(aws, region, ami, allowed)
    if shared:
        raise AmiError(f"image {name}: the build shared {', '.join(shared)}, which amis.yaml "
                       f"does not allow (share_with: {sorted(allowed) or 'nobody'}); revoked, "
                       "nothing published: remove ami_users/ami_groups/snapshot_users from the "
                       "template or add the account to share_with", code=FAILED)


def discard(aws: Aws, name: str, digest: str, started: datetime,
            made: list[tuple[str, str]]) -> list[str]:
    """Deregister what a failed build made (and its snapshots), so that a
    retry does not collide with its AMI names; an AMI that is not provably
    this build's is left alone. Returns ``region:ami`` of each one removed."""
    removed = []
    for region, ami in made:
        found = aws.describe_amis(region, [ami]).get(ami)
        if found is None or not _made_by(found, name, digest, started):
            continue
        aws.call(f"deregistering {ami}, made by a failed build", "ec2", region,
                 "deregister_image", ImageId=ami)
        for mapping in found.get("BlockDeviceMappings", []):
            if mapping.get("Ebs", {}).get("SnapshotId"):
                aws.call(f"deleting snapshot {mapping['Ebs']['SnapshotId']}", "ec2", region,
                         "delete_snapshot", SnapshotId=mapping["Ebs"]["SnapshotId"])
        removed.append(f"{region}:{ami}")
    return removed


def _launch_grants(aws: Aws, region: str, ami: str, allowed: set[str]) -> list[str]:
    grants = aws.call(f"reading launch permissions of {ami}", "ec2", region,
                          "describe_image_attribute", ImageId=ami,
                          Attribute="launchPermission").get("LaunchPermissions", [])
    wrong = [g for g in grants if _grantee(g)[1] not in allowed or _grantee(g)[0] != "UserId"]
    if wrong:
        aws.call(f"revoking launch permissions of {ami}", "ec2", region,
                     "modify_image_attribute", ImageId=ami,
                     LaunchPermission={"Remove": wrong})
    return [f"{region}:{ami} with {'everyone' if g.get('Group') == 'all' else _grantee(g)[1]}"
            for g in wrong]


def _snapshot_grants(aws: Aws, region: str, ami: str, allowed: set[str]) -> list[str]:
    image = aws.describe_amis(region, [ami]).get(ami, {})
    snapshots = [m["Ebs"]["SnapshotId"] for m in image.get("BlockDeviceMappings", [])
                 if m.get("Ebs", {}).get("SnapshotId")]
    out = []
    for snap in snapshots:
        grants = aws.call(f"reading create-volume permissions of {snap}", "ec2", region,
                              "describe_snapshot_attribute", SnapshotId=snap,
                              Attribute="createVolumePermission").get("CreateVolumePermissions", [])
        wrong = [g for g in grants if _grantee(g)[1] not in allowed or _grantee(g)[0] != "UserId"]
        for grant in wrong:
            kind, who = _grantee(grant)
            args = {"GroupNames": [who]} if kind == "Group" else {"UserIds": [who]}
            aws.call(f"revoking create-volume permission of {snap}", "ec2", region,
                         "modify_snapshot_attribute", SnapshotId=snap,
                         Attribute="createVolumePermission", OperationType="remove", **args)
            out.append(f"snapshot {region}:{snap} with "
                       f"{'everyone' if who == 'all' else who}")
    return out
