"""What ``doit plan`` prints: every image's status, why, its AMI and how
long its build is expected to take, with totals for the run.

The rows are the decision ``ami:<name>`` acts on, so the plan is right on a
fresh clone too (doit's own database is not consulted). Without AWS it
still plans from the local records, and says what it could not check.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import AmiError
from ..core.decision import REJECTED, TO_TEST, Decision, Verdict
from ..core.graph import Graph
from ..core.records import Record
from ..core.text import table
from ..state.lookup import Lookup
from .prebuild import Prebuild


@dataclass
class Row:
    image: str
    status: str
    reason: str
    ami: str | None              # the AMI the image has now, or would reuse
    builds: bool                 # Packer would run for it
    seconds: float | None = None  # its last build's duration
    cause: str = ""              # the verdict's cause (missing, gone, changed, ...)
    works: bool = False          # its step has work: a build, a test, or a rejection to say


def rows(graph: Graph, decision: Decision, records: dict[str, Record | None],
         baseline: dict[str, Record] | None = None) -> list[Row]:
    """One row per node, the source first, from the decision. An image this
    channel has never built is expected to take what it took on main
    (``baseline``)."""
    out = []
    for name in graph.names:
        verdict: Verdict = decision.verdicts[name]
        current = records.get(name)
        ami = verdict.ami if verdict.ami else (current.ami if current else None)
        timed = current or (baseline or {}).get(name)
        took = timed.seconds if timed and name in graph.images else None
        new = verdict.builds and verdict.current is None    # this channel never built it
        out.append(Row(name, verdict.status, verdict.reason, ami, verdict.builds, took,
                       "missing" if new else verdict.cause, verdict.works))
    return out


def unsigned(graph: Graph, records: dict[str, Record | None]) -> list[str]:
    """Images whose current AMI has no signed provenance."""
    return [name for name in graph.images
            if (record := records.get(name)) is not None and not record.provenance]


def planned(graph: Graph, lookup: Lookup, prebuild: Prebuild) -> tuple[list[Row], str | None]:
    """The plan's rows, and why AWS could not be asked (None: it was)."""
    problems = prebuild.every_problem()      # every image's, in one error
    if problems:
        raise AmiError.of(problems)
    lookup.pull(offline_ok=True)
    result = lookup.decision()
    facts = lookup.facts
    return rows(graph, result, facts.records, facts.baseline), facts.offline


def estimate(rows: list[Row], graph: Graph) -> tuple[float, float, list[str], int]:
    """Expected seconds one at a time, and with unlimited parallelism (the
    critical path: the longest chain of builds), that chain, and how many
    builds have no recorded duration (counted as 0)."""
    by_name = {r.image: r for r in rows}

    def cost(name: str) -> float:
        row = by_name[name]
        return (row.seconds or 0.0) if row.builds else 0.0

    finish: dict[str, tuple[float, list[str]]] = {graph.source.name: (0.0, [])}
    for name, image in graph.images.items():
        before, chain = finish[image.parent]
        finish[name] = (before + cost(name), chain + ([name] if cost(name) else []))
    critical, path = max(finish.values(), key=lambda fp: fp[0])
    unknown = sum(1 for r in rows if r.builds and r.seconds is None)
    return sum(cost(n) for n in graph.images), critical, path, unknown


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def render(rows: list[Row], graph: Graph, jobs: int, offline_reason: str | None = None,
           width: int | None = None) -> str:
    """``width``: on a terminal, its width, which the why column is cut to."""
    shown = table(
        [[r.image, r.status, r.ami or "-", _duration(r.seconds) if r.builds else "",
          r.reason] for r in rows],
        ["image", "status", "ami", "expected", "why"], width)
    builds = [r for r in rows if r.builds]
    lines = [shown, ""]
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
    tested = [r.image for r in rows if r.status == TO_TEST]
    if tested:
        lines.append(f"{len(tested)} to test, on AMIs built earlier (no Packer): "
                     f"{', '.join(tested)}")
    rejected = [r.image for r in rows if r.status == REJECTED]
    if rejected:
        lines.append(f"{len(rejected)} rejected by their tests, built on by nothing: "
                     f"{', '.join(rejected)} (change the image or its tests)")
    if offline_reason:
        lines.append(f"offline ({offline_reason}): AMI existence, source filters and earlier "
                     "builds by digest were not checked")
    return "\n".join(lines)
