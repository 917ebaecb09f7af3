"""Garbage collection: old AMIs of this project, and what a killed Packer left.

First, the run's channel is rid of images ``amis.yaml`` no longer has
(removed or renamed): their record, plain-text id and SSM parameter are
retired, so their AMIs are no longer "current" there.

An AMI is a candidate only if this project built it (tag ManagedBy). It
survives, with the reason said, when it is among the newest K of its
image (an image that amis.yaml has, or some channel still holds), younger
than D days, the current record of any channel, the parent of a surviving
AMI, used by an instance (running or stopped), referenced by a launch
template version or launch configuration, or shared with another account.
Dry run by default; ``--apply`` deregisters at most a bounded number per
run and deletes their snapshots.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from ..adapters.aws import tags_of
from ..core.errors import AmiError, FAILED, INTERRUPTED
from ..core.names import MANAGED_BY
from ..core.text import table
from .run import Run

# `doit gc`'s options and their defaults
DEFAULTS = MappingProxyType({"keep": 3, "days": 14, "max": 20, "leftover-hours": 6})


@dataclass
class Candidate:
    ami: str
    region: str
    image: str
    created: datetime
    parent: str | None
    snapshots: list[str]
    digest: str = ""                                    # its Digest tag: the lock it goes by
    keep: list[str] = field(default_factory=list)      # reasons it survives
    kept_children: set[str] = field(default_factory=set)
    doubt: str = ""                                     # why it cannot be proved unused
    orphan: bool = False            # its image is in neither amis.yaml nor any channel


def _created(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _ours(run: Run, region: str) -> list[Candidate]:
    images = run.aws.call(f"listing AMIs in {region}", "ec2", region, "describe_images",
                          Owners=["self"], IncludeDisabled=True,      # revoke --disable
                          Filters=[{"Name": "tag:ManagedBy", "Values": [MANAGED_BY]}])["Images"]
    out = []
    for img in images:
        tags = tags_of(img)
        out.append(Candidate(
            ami=img["ImageId"], region=region, image=tags.get("Image", "?"),
            created=_created(img["CreationDate"]), parent=tags.get("ParentAmi"),
            digest=tags.get("Digest", ""),
            snapshots=[m["Ebs"]["SnapshotId"] for m in img.get("BlockDeviceMappings", [])
                       if m.get("Ebs", {}).get("SnapshotId")]))
    return out


def not_in_graph(channel: str, images: list[str]) -> str:
    """What ``plan`` and ``amis`` say of records the graph no longer has."""
    return (f"channel {channel} holds records of {', '.join(images)}, which amis.yaml no longer "
            "has (removed or renamed): `doit gc --apply` retires them, then their AMIs")


def retire(run: Run, apply: bool) -> tuple[list[str], dict[str, list[str]]]:
    """Images the run's channel holds and the graph no longer has, retired
    with ``apply``; and, per other channel, those it holds that this graph
    lacks (another branch's images, or promotions of retired ones), left be."""
    channel = run.channel()[0]
    names = set(run.graph.names)
    held = run.registry.held()
    gone = sorted(held.get(channel, set()) - names)
    for image in gone:
        if apply:
            record = run.registry.retire(channel, image)
            run.settings.record_path(image).unlink(missing_ok=True)
            ami = f" ({record.ami})" if record else ""
        else:
            ami = ""
        run.say(f"{'retired' if apply else 'would retire'} {image}{ami} from channel {channel}: "
                "its record, plain-text id and SSM parameter (amis.yaml no longer has it)")
    others = {c: sorted(images - names) for c, images in sorted(held.items())
              if c != channel and images - names}
    return gone, others


def _channel_amis(run: Run, image: str | None = None,
                  retired: frozenset[str] = frozenset()) -> dict[str, str]:
    """AMI id -> channel, for the current record of every image (or of
    ``image``) in every channel, but the run channel's ``retired`` ones."""
    registry = run.registry
    prefix = registry.key("channels") + "/"
    skip = {registry.current_key(run.channel()[0], i) for i in retired}
    found: dict[str, str] = {}
    wanted = f"/{image}.json" if image else ".json"
    for key in sorted(k for k in registry.listing(prefix) if k.endswith(wanted)):
        record = None if key in skip else registry.record_at(key)
        if record:
            channel = key[len(prefix):].split("/")[0]
            found.update({ami: channel for ami in record.amis.values()})
    return found


def _pages(run: Run, region: str, service: str, operation: str, key: str,
           **kwargs: Any) -> list[dict]:
    return run.aws.pages(f"{operation} in {region}", service, region, operation, key, **kwargs)


def _in_use(run: Run, region: str) -> tuple[dict[str, str], list[str]]:
    """AMI id -> what uses it (instances, launch template versions, launch
    configurations), and what could not be looked up: while anything is in
    doubt, no AMI of the region can be proved unused."""
    used: dict[str, str] = {}
    doubts: list[str] = []

    def listed(what: str, service: str, operation: str, key: str, **kwargs: Any) -> list[dict]:
        try:
            return _pages(run, region, service, operation, key, **kwargs)
        except AmiError as err:
            doubts.append(f"listing {what} in {region} failed ({err})")
            return []

    for reservation in listed("instances", "ec2", "describe_instances", "Reservations", Filters=[{
            "Name": "instance-state-name", "Values": ["pending", "running", "stopping",
                                                      "stopped"]}]):
        for inst in reservation["Instances"]:
            used.setdefault(inst["ImageId"], f"used by instance {inst['InstanceId']}")
    for template in listed("launch templates", "ec2", "describe_launch_templates",
                           "LaunchTemplates"):
        name = template["LaunchTemplateName"]
        for version in listed(f"the versions of launch template {name}", "ec2",
                              "describe_launch_template_versions", "LaunchTemplateVersions",
                              LaunchTemplateId=template["LaunchTemplateId"], Versions=[]):
            by = f"launch template {name} v{version['VersionNumber']}"
            image = version.get("LaunchTemplateData", {}).get("ImageId", "")
            if image.startswith("resolve:ssm:"):
                try:
                    image = _ssm_value(run, region, image[len("resolve:ssm:"):])
                except AmiError as err:
                    doubts.append(f"{by} says {image}, and reading the parameter failed ({err})")
                    continue
            if image:
                used.setdefault(image, f"referenced by {by}")
    for config in listed("launch configurations", "autoscaling",
                         "describe_launch_configurations", "LaunchConfigurations"):
        used.setdefault(config["ImageId"],
                        f"referenced by launch configuration {config['LaunchConfigurationName']}")
    return used, doubts


def _ssm_value(run: Run, region: str, name: str) -> str:
    """The AMI a ``resolve:ssm:`` reference launches, as EC2 resolves it: the
    latest value, or the version (``name:3``) or label (``name:golden``) it
    names, which GetParameter takes as they are."""
    return run.aws.call(f"reading SSM parameter {name}", "ssm", region, "get_parameter",
                        Name=name)["Parameter"]["Value"]


def _hours(now: datetime, then: datetime) -> float:
    """How long ago ``then`` was, in hours (compared as numbers: a --days
    of 1e300 is "keep everything", not an overflow)."""
    return (now - then).total_seconds() / 3600


def _regions(run: Run) -> list[str]:
    return sorted({r for image in run.graph.images.values() for r in image.regions})


def plan_gc(run: Run, keep: int, days: float, now: datetime | None = None,
            retired: frozenset[str] = frozenset(),
            elsewhere: frozenset[str] = frozenset()) -> list[Candidate]:
    """Every AMI this project built, each with the reasons it survives (if
    any), as it stands once ``retired`` are out of the run's channel.
    ``elsewhere``: images other channels hold that the graph lacks (see
    :func:`retire`)."""
    now = now or run.clock.now()
    regions = _regions(run)
    candidates = [c for region in regions for c in _ours(run, region)]
    current = _channel_amis(run, retired=retired)
    revoked = run.registry.revoked()
    held = set(run.graph.names) | elsewhere
    used: dict[str, str] = {}
    doubts: dict[str, list[str]] = {}
    for region in regions:
        found, doubts[region] = _in_use(run, region)
        used.update(found)
    by_image: dict[tuple[str, str], list[Candidate]] = {}
    for c in candidates:
        by_image.setdefault((c.image, c.region), []).append(c)
    for (image, _), group in by_image.items():
        if image not in held:
            for c in group:         # retired everywhere: nothing to roll back to
                c.orphan = True
            continue
        standing = [c for c in group if c.ami not in revoked]
        for rank, c in enumerate(sorted(standing, key=lambda c: c.created, reverse=True)):
            if rank < keep:
                c.keep.append(f"among the newest {keep} of {c.image}")
    for c in candidates:
        # A revoked AMI is deletable as soon as nothing uses it: no age, no newest K.
        if c.ami not in revoked and _hours(now, c.created) < days * 24:
            c.keep.append(f"younger than {days:g} days")
        if c.ami in current:
            c.keep.append(f"current in channel {current[c.ami]}")
        if c.ami in used:
            c.keep.append(used[c.ami])
        elif doubts[c.region] and not c.keep:
            c.doubt = doubts[c.region][0]
            c.keep.append(f"cannot prove it unused: {c.doubt}")
        grants = run.aws.call(f"reading launch permissions of {c.ami}", "ec2", c.region,
                              "describe_image_attribute", ImageId=c.ami,
                              Attribute="launchPermission")["LaunchPermissions"]
        if grants:
            c.keep.append("shared with " + ", ".join(
                g.get("UserId") or g.get("Group") or json.dumps(g) for g in grants))
    # Parents of survivors survive, all the way up.
    by_ami = {c.ami: c for c in candidates}
    changed = True
    while changed:
        changed = False
        for c in candidates:
            parent = by_ami.get(c.parent or "")
            if (c.keep or c.kept_children) and parent and c.ami not in parent.kept_children:
                parent.kept_children.add(c.ami)
                changed = True
    for c in candidates:
        if c.kept_children:
            c.keep.append("parent of kept " + ", ".join(sorted(c.kept_children)))
    return sorted(candidates, key=lambda c: (c.image, c.region, c.created))


def doomed(candidates: list[Candidate], most: int) -> list[Candidate]:
    """What goes: the unkept, oldest first, at most ``most``."""
    return sorted((c for c in candidates if not c.keep), key=lambda c: c.created)[:most]


def delete(run: Run, candidates: list[Candidate], most: int) -> list[Candidate]:
    """Deregister the doomed (the oldest ``most``) and their snapshots.

    Each goes under the lock of its image and digest, the lock a reuse of it
    takes, and is checked again there: one that became current meanwhile (a
    revert reused it) or that a build or reuse is holding now stays, and so
    do its parents. Children go first, so a parent is decided knowing them."""
    gone: list[Candidate] = []
    kept = {c.ami for c in candidates if c.keep}
    for c in sorted(doomed(candidates, most), key=lambda c: c.created, reverse=True):
        if run.interrupts.interrupted():
            break                       # after the AMI in hand: collect says what is left
        children = [o.ami for o in candidates if o.parent == c.ami and o.ami in kept]
        if children:
            c.keep.append("parent of kept " + ", ".join(sorted(children)))
            kept.add(c.ami)
            continue
        with run.locks.held_if_free(c.image, c.digest or "untagged",
                                    lambda text: run.say(text, c.image)) as (lock, holder):
            if lock is None:
                c.keep.append(f"in use by {holder}, who holds its lock")
            elif c.ami in (current := _channel_amis(run, c.image)):
                c.keep.append(f"became current in channel {current[c.ami]} meanwhile")
            else:
                run.aws.call(f"deregistering {c.ami}", "ec2", c.region, "deregister_image",
                             ImageId=c.ami)
                for snap in c.snapshots:
                    run.aws.call(f"deleting snapshot {snap}", "ec2", c.region,
                                 "delete_snapshot", SnapshotId=snap)
                gone.append(c)
                continue
        kept.add(c.ami)
    return gone


def leftovers(run: Run, hours: float, apply: bool, now: datetime | None = None) -> list[str]:
    """Instances, key pairs and security groups named packer_* that a killed
    Packer left behind, older than ``hours``. Returns what was (or would be) removed."""
    now = now or run.clock.now()
    said = []
    for region in _regions(run):
        def call(what: str, operation: str, **kwargs: Any) -> Any:
            return run.aws.call(what, "ec2", region, operation, **kwargs)

        live_groups: set[str] = set()
        young_packer = False
        old_instances = []
        for reservation in _pages(run, region, "ec2", "describe_instances", "Reservations", Filters=[{
                "Name": "instance-state-name", "Values": ["pending", "running", "stopping",
                                                          "stopped"]}]):
            for inst in reservation["Instances"]:
                groups = [g["GroupName"] for g in inst.get("SecurityGroups", [])]
                live_groups |= set(groups)
                packer = (inst.get("KeyName", "").startswith("packer_")
                          or any(g.startswith("packer_") for g in groups))
                if packer and _hours(now, inst["LaunchTime"]) > hours:
                    old_instances.append(inst["InstanceId"])
                elif packer:
                    young_packer = True
        for instance in old_instances:
            said.append(f"{region}: instance {instance}")
            if apply:
                call(f"terminating {instance}", "terminate_instances", InstanceIds=[instance])
        for pair in call("listing key pairs", "describe_key_pairs")["KeyPairs"]:
            if pair["KeyName"].startswith("packer_") and \
                    _hours(now, pair.get("CreateTime", now)) > hours:
                said.append(f"{region}: key pair {pair['KeyName']}")
                if apply:
                    call(f"deleting key pair {pair['KeyName']}", "delete_key_pair",
                         KeyName=pair["KeyName"])
        if young_packer:
            continue        # a build is running: its security group may be new and unused yet
        for group in call("listing security groups", "describe_security_groups")["SecurityGroups"]:
            if group["GroupName"].startswith("packer_") and group["GroupName"] not in live_groups:
                said.append(f"{region}: security group {group['GroupName']}")
                if apply:
                    call(f"deleting {group['GroupId']}", "delete_security_group",
                         GroupId=group["GroupId"])
    return said


def collect(run: Run, apply: bool, keep: int, days: float, most: int,
            leftover_hours: float) -> None:
    """``doit gc``: say what goes and why the rest stays; with ``apply``, delete."""
    if keep < 1 or not (0 <= days < math.inf and 0 <= most and
                        0 <= leftover_hours < math.inf):
        raise AmiError("gc: --keep must be at least 1; --days, --max and --leftover-hours "
                       "must be numbers, not negative (nor nan or inf)")
    run.registry.store.check()
    retired, others = retire(run, apply)
    for channel, images in others.items():
        run.say(f"channel {channel} holds records of {', '.join(images)}, which this amis.yaml "
                f"does not have; left as they are (to retire them there: AMI_CHANNEL={channel} "
                "doit gc --apply)")
    candidates = plan_gc(run, keep, days, retired=frozenset(retired),
                         elsewhere=frozenset(i for images in others.values() for i in images))
    gone = delete(run, candidates, most) if apply else doomed(candidates, most)
    going = {c.ami for c in gone}
    stopped = apply and run.interrupts.interrupted()
    unfinished = {c.ami for c in doomed(candidates, most)} - going if stopped else set()
    rows = [[c.image, c.region, c.ami, c.created.strftime("%Y-%m-%d %H:%M"),
             ("deleted" if apply else "would delete") if c.ami in going
             else "not deleted (interrupted)" if c.ami in unfinished
             else ("keep" if c.keep else "later (over --max)"),
             "; ".join(c.keep) or (f"older than {days:g} days, " + (
                 f"{c.image} is retired (not in amis.yaml, in no channel)" if c.orphan
                 else f"not among the newest {keep}"))]
            for c in candidates]
    run.say(table(rows, ["image", "region", "ami", "created", "action", "why"])
            if rows else "no AMIs built by this project")
    left = leftovers(run, leftover_hours, apply and not stopped)
    for item in left:
        run.say(f"{'removed' if apply else 'would remove'} Packer leftover: {item}")
    doubted = [c for c in candidates if c.doubt and c.ami not in going]
    if stopped:
        raise AmiError(f"gc: interrupted: deleted {len(gone)} AMI(s) "
                       f"({', '.join(c.ami for c in gone) or 'none'}), {len(unfinished)} not "
                       "deleted, no Packer leftovers removed; run gc --apply again to go on", code=INTERRUPTED)
    if apply:
        snapshots = sum(len(c.snapshots) for c in gone)
        run.say(f"deleted {len(gone)} AMI(s) and {snapshots} snapshot(s), removed "
                f"{len(left)} leftover(s); {len(candidates) - len(gone)} AMI(s) kept")
        if doubted:
            raise AmiError(f"gc: kept {len(doubted)} AMI(s) that could not be proved unused "
                           f"({doubted[0].doubt}): "
                           "fix the access or the fault and run gc again", code=FAILED)
    else:
        given = {"keep": keep, "days": days, "max": most, "leftover-hours": leftover_hours}
        options = "".join(f" --{name} {value:g}" for name, value in given.items()
                          if value != DEFAULTS[name])
        run.say(f"dry run: {len(gone)} AMI(s) and {len(left)} leftover(s) would go; "
                f"run `doit gc{options} --apply` to delete them")
