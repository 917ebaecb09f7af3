"""Checks of what Packer made, before anything is published.

Each AMI Packer names must be this build's: tagged with this image and
digest (the runner adds those tags to every template) and created after
the build started; a Packer, or a wrapper, that names an existing AMI (the
parent's, an older build's) is not trusted. Each AMI is hardened (IMDSv2
required at launch) and may be shared, by launch permission or by its
snapshots' create-volume permission, only with the accounts the image
declares in ``share_with``: anything else is revoked and nothing is
published. What a failed build made is deregistered (``discard``).

The checks before Packer are ``prebuild``'s; an AMI's signed provenance is
checked by ``verify``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from ..adapters.ec2 import Ec2
from ..core.cloud import Ami, Grant
from ..core.errors import AmiError, FAILED


def _made_by(found: Ami, name: str, digest: str, started: datetime) -> bool:
    """Whether an AMI is this build's: its image and digest tags, created after it started."""
    # EC2 keeps creation times to the second.
    return found.tags.get("Image") == name and found.tags.get("Digest") == digest \
        and found.created is not None \
        and found.created >= started.replace(microsecond=0) - timedelta(seconds=1)


def _unwanted(grants: list[Grant], allowed: set[str]) -> list[Grant]:
    return [g for g in grants if g.kind != "UserId" or g.who not in allowed]


def vet(ec2: Ec2, name: str, share_with: tuple[str, ...], digest: str, started: datetime,
        amis: dict[str, str]) -> None:
    allowed = set(share_with)
    for region, ami in amis.items():
        found = ec2.describe(region, [ami]).get(ami)
        if found is None:
            raise AmiError(f"image {name}: Packer named {region}:{ami}, which does not exist; "
                           "nothing published", code=FAILED)
        if not _made_by(found, name, digest, started):
            raise AmiError(f"image {name}: Packer named {region}:{ami}, which this build did not "
                           f"make (tags Image={found.tags.get('Image')!r}, Digest="
                           f"{str(found.tags.get('Digest'))[:12]!r}, created "
                           f"{found.created.isoformat() if found.created else None}); "
                           "nothing published", code=FAILED)
    shared = []
    for region, ami in amis.items():
        ec2.harden(region, ami)
        wrong = _unwanted(ec2.launch_grants(region, ami), allowed)
        if wrong:
            ec2.revoke_launch_grants(region, ami, wrong)
        shared += [f"{region}:{ami} with {g.shown()}" for g in wrong]
        found = ec2.describe(region, [ami]).get(ami)
        for snap in found.snapshots if found else ():
            for grant in _unwanted(ec2.volume_grants(region, snap), allowed):
                ec2.revoke_volume_grant(region, snap, grant)
                shared.append(f"snapshot {region}:{snap} with {grant.shown()}")
    if shared:
        raise AmiError(f"image {name}: the build shared {', '.join(shared)}, which amis.yaml "
                       + (f"does not allow (share_with: {', '.join(sorted(allowed))}); "
                          if allowed else "does not allow (no share_with: set); ")
                       + "revoked, "
                       "nothing published: remove ami_users/ami_groups/snapshot_users from the "
                       "template or add the account to share_with", code=FAILED)


def discard(ec2: Ec2, name: str, digest: str, started: datetime,
            made: list[tuple[str, str]]) -> list[str]:
    """Deregister what a failed build made (and its snapshots), so that a
    retry does not collide with its AMI names; an AMI that is not provably
    this build's is left alone. Returns ``region:ami`` of each one removed."""
    removed = []
    for region, ami in made:
        found = ec2.describe(region, [ami]).get(ami)
        if found is None or not _made_by(found, name, digest, started):
            continue
        ec2.deregister(region, ami, found.snapshots)
        removed.append(f"{region}:{ami}")
    return removed
