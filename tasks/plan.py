"""What ``doit plan`` prints: every image's status and why.

The plan decides as ``ami:<name>`` does, by content digest, so it is right
on a fresh clone too (doit's own database is not consulted).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import aws, console, digest, registry
from .build import current_digest
from .config import Settings
from .graph import Graph

UP_TO_DATE = "up to date"
REBUILD = "would rebuild"
MISSING = "missing"
REUSE = "would reuse"


@dataclass
class Row:
    image: str
    status: str
    reason: str
    ami: str | None          # the AMI the image has now, or would reuse

    @property
    def settled(self) -> bool:
        """Its AMI id is known before anything builds."""
        return self.status in (UP_TO_DATE, REUSE)


def _shorten(paths: list[str], most: int = 3) -> str:
    more = f" (+{len(paths) - most} more)" if len(paths) > most else ""
    return ", ".join(paths[:most]) + more


def _why(record: registry.Record, inputs: dict[str, str], parent_ami: str,
         settings: dict) -> str:
    reasons = []
    changed = digest.changed_inputs(record.inputs, inputs)
    if changed:
        reasons.append("changed " + _shorten(changed))
    if record.parent and record.parent.get("ami") != parent_ami:
        reasons.append(f"parent AMI {record.parent.get('ami')} -> {parent_ami}")
    if record.settings != settings:
        reasons.append("build settings changed")
    return "; ".join(reasons) or "digest differs"


def _source_row(settings: Settings, graph: Graph) -> Row:
    name = graph.source.name
    ami, how = aws.resolve_source(settings, graph.source, graph.region)
    record = registry.read_local(settings.record_path(name))
    if record is None:
        return Row(name, MISSING, f"not recorded yet; resolves to {ami} ({how})", None)
    if record.ami != ami:
        return Row(name, REBUILD, f"source moved: {record.ami} -> {ami} ({how})", record.ami)
    return Row(name, UP_TO_DATE, how, record.ami)


def make_plan(settings: Settings, graph: Graph) -> list[Row]:
    rows = {graph.source.name: _source_row(settings, graph)}
    for name, image in graph.images.items():
        record = registry.read_local(settings.record_path(name))
        parent = rows[image.parent]
        status = MISSING if record is None else REBUILD
        now = record.ami if record else None
        parent_ami = parent.ami if parent.settled else None
        if parent_ami is None:
            rows[name] = Row(name, status, f"parent {image.parent} changed", now)
            continue
        dig, inputs = current_digest(settings, graph, name, parent_ami)
        if record and record.digest == dig:
            if aws.ami_exists(settings, record.ami, record.region):
                rows[name] = Row(name, UP_TO_DATE, f"digest {dig[:12]}", record.ami)
            else:
                rows[name] = Row(name, REBUILD, f"AMI {record.ami} no longer exists", record.ami)
            continue
        earlier = registry.fetch_by_digest(settings, graph.region, name, dig)
        if earlier and aws.ami_exists(settings, earlier.ami, earlier.region):
            rows[name] = Row(name, REUSE, f"an earlier build has these inputs: {earlier.ami}",
                             earlier.ami)
        elif record is None:
            rows[name] = Row(name, MISSING, "never built", None)
        else:
            rows[name] = Row(name, REBUILD,
                             _why(record, inputs, parent_ami, image.settings(settings.sandbox)),
                             record.ami)
    return list(rows.values())


def render(rows: list[Row]) -> str:
    return console.table([[r.image, r.status, r.ami or "-", r.reason] for r in rows],
                         ["image", "status", "ami", "why"])
