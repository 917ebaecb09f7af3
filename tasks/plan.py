"""What ``doit plan`` prints: every image's status, why, its AMI and how
long its build is expected to take, with totals for the run.

The plan decides as ``ami:<name>`` does, by content digest, so it is right
on a fresh clone too (doit's own database is not consulted). Without AWS
it still plans from the local records, and says what it could not check.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import aws, console, digest, registry
from .build import current_digest, too_old
from .config import Settings
from .graph import Graph

UP_TO_DATE = "up to date"
REBUILD = "would rebuild"
MISSING = "missing"
REUSE = "would reuse"
GONE = "AMI gone"
BUILDS = (REBUILD, MISSING, GONE)


@dataclass
class Row:
    image: str
    status: str
    reason: str
    ami: str | None          # the AMI the image has now, or would reuse
    seconds: float | None = None   # its last build's duration

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


def _source_row(settings: Settings, graph: Graph, online: bool) -> Row:
    name = graph.source.name
    record = registry.read_local(settings.record_path(name))
    spec = graph.source.spec(settings.sandbox)
    if not online and "ami" not in spec:
        if record is None:
            return Row(name, MISSING, "not recorded yet (offline: filter not resolved)", None)
        return Row(name, UP_TO_DATE, "offline: newest match not checked", record.ami)
    ami, how = aws.resolve_source(settings, graph.source, graph.region)
    if record is None:
        return Row(name, MISSING, f"not recorded yet; resolves to {ami} ({how})", None)
    if record.ami != ami:
        return Row(name, REBUILD, f"source moved: {record.ami} -> {ami} ({how})", record.ami)
    return Row(name, UP_TO_DATE, how, record.ami)


def make_plan(settings: Settings, graph: Graph, online: bool = True) -> list[Row]:
    rows = {graph.source.name: _source_row(settings, graph, online)}
    for name, image in graph.images.items():
        record = registry.read_local(settings.record_path(name))
        took = record.build_seconds if record else None
        parent = rows[image.parent]
        now = record.ami if record else None
        if not parent.settled or parent.ami is None:
            rows[name] = Row(name, MISSING if record is None else REBUILD,
                             f"parent {image.parent} changed", now, took)
            continue
        dig, inputs = current_digest(settings, graph, name, parent.ami)
        if record and record.digest == dig:
            if too_old(record, image):
                rows[name] = Row(name, REBUILD, f"older than {image.max_age_days} days "
                                 f"({record.age_days():.0f})", now, took)
            elif not online:
                rows[name] = Row(name, UP_TO_DATE, f"digest {dig[:12]} (offline: AMI not checked)",
                                 now, took)
            elif aws.ami_exists(settings, record.ami, record.region):
                rows[name] = Row(name, UP_TO_DATE, f"digest {dig[:12]}", now, took)
            else:
                rows[name] = Row(name, GONE, f"AMI {record.ami} no longer exists", now, took)
            continue
        earlier = registry.fetch_by_digest(settings, graph.region, name, dig) if online else None
        if earlier and not too_old(earlier, image) and \
                aws.ami_exists(settings, earlier.ami, earlier.region):
            rows[name] = Row(name, REUSE, f"an earlier build has these inputs: {earlier.ami}",
                             earlier.ami)
        elif record is None:
            rows[name] = Row(name, MISSING, "never built", None)
        else:
            rows[name] = Row(name, REBUILD,
                             _why(record, inputs, parent.ami, image.settings(settings.sandbox)),
                             now, took)
    return list(rows.values())


def estimate(rows: list[Row], graph: Graph) -> tuple[float, float, list[str], int]:
    """Expected seconds one at a time, and with unlimited parallelism (the
    critical path: the longest chain of builds), that chain, and how many
    builds have no recorded duration (counted as 0)."""
    by_name = {r.image: r for r in rows}

    def cost(name: str) -> float:
        row = by_name[name]
        return (row.seconds or 0.0) if row.status in BUILDS else 0.0

    finish: dict[str, tuple[float, list[str]]] = {graph.source.name: (0.0, [])}
    for name, image in graph.images.items():
        before, chain = finish[image.parent]
        finish[name] = (before + cost(name), chain + ([name] if cost(name) else []))
    critical, path = max(finish.values(), key=lambda fp: fp[0])
    unknown = sum(1 for r in rows if r.status in BUILDS and r.seconds is None
                  and r.image != graph.source.name)
    return sum(cost(n) for n in graph.images), critical, path, unknown


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def render(rows: list[Row], graph: Graph, jobs: int, offline_reason: str | None = None) -> str:
    table = console.table(
        [[r.image, r.status, r.ami or "-", _duration(r.seconds) if r.status in BUILDS else "",
          r.reason] for r in rows],
        ["image", "status", "ami", "expected", "why"])
    builds = [r for r in rows if r.status in BUILDS and r.image != graph.source.name]
    lines = [table, ""]
    if builds and all(r.seconds is None for r in builds):
        lines.append(f"{len(builds)} to build; no earlier builds, so no expected duration")
    elif builds:
        sequential, critical, path, unknown = estimate(rows, graph)
        parallel = max(critical, sequential / max(jobs, 1))
        lines.append(f"{len(builds)} to build: about {_duration(sequential)} one at a time, "
                     f"{_duration(parallel)} with -n {jobs} (critical path "
                     f"{' -> '.join(path) or '-'}: {_duration(critical)})"
                     + (f"; {unknown} never built, duration unknown" if unknown else ""))
    else:
        lines.append("nothing to build")
    if offline_reason:
        lines.append(f"offline ({offline_reason}): planned from local records; AMI existence, "
                     "source filters and earlier builds by digest were not checked")
    return "\n".join(lines)


def pull_or_offline(settings: Settings, graph: Graph, channel: str) -> str | None:
    """Pull the records. When AWS cannot be reached (no credentials, no
    network), return why: the plan then goes on from the local records."""
    try:
        registry.pull(settings, graph.region, channel, graph.names)
    except aws.Unreachable as err:
        return str(err)
    return None
