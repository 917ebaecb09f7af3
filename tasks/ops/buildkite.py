"""Buildkite: the run's annotation and the dynamic pipeline for many agents."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Mapping

import yaml

from ..adapters.tools import Tools, find
from ..core.errors import AmiError, FAILED
from ..core.files import write_atomic
from ..core.graph import Graph
from ..core.outcome import Outcome
from ..core.settings import Buildkite, Settings
from ..state.reports import Report, Reports
from . import diagram
from .build import Builder
from .plan import Row

STEP_KEY = "ami-{}"
# ./doit installs what the agent lacks (.ci/install), into an environment kept
# outside the checkout: a kept agent's `git clean -ffxdq` does not remove it.
STEP_COMMAND = "./doit ami:{}"
# Settings the generated steps need on whichever agent runs them.
PASSED_ON = ("AMI_BUCKET", "AMI_PREFIX", "AMI_CHANNEL", "AMI_SSM_PREFIX", "AMI_PACKER_RETRIES",
             "AMI_RETRY_BASE_SECONDS", "AMI_LOCK_TTL_SECONDS", "AMI_DEFAULT_BRANCH")


def annotation(graph: Graph, reports: dict[str, Report], rows: list[Row]) -> tuple[str, str]:
    """Markdown for `buildkite-agent annotate`, and its style."""
    failed = [r for r in reports.values() if r.outcome is Outcome.FAILED]
    lines = ["### AMIs", "", "| image | this run | AMI | took | note |", "|---|---|---|---|---|"]
    by_image = {r.image: r for r in rows}
    for name in graph.names:
        report = reports.get(name)
        outcome = report.outcome if report else Outcome.UP_TO_DATE
        ami = report.ami if report and report.ami != "-" else (by_image[name].ami or "-")
        took = f"{report.seconds:.0f}s" if report and outcome in (Outcome.BUILT, Outcome.FAILED) \
            else ""
        note = (report.note if report else "").replace("|", "\\|")
        lines.append(f"| {name} | {outcome} | `{ami}` | {took} | {note} |")
    lines += ["", "```mermaid", diagram.mermaid(graph, rows), "```"]
    return "\n".join(lines) + "\n", "error" if failed else "success"


def annotate(markdown: str, style: str, env: Mapping[str, str], tools: Tools,
             cwd: Path) -> str | None:
    """Post the annotation when buildkite-agent is there. Returns why it was
    not posted, or None."""
    agent = find("buildkite-agent", env)
    if not agent:
        return "buildkite-agent is not installed"
    result = tools.run([agent, "annotate", "--style", style, "--context", "amis"], cwd=cwd,
                       env=env, input=markdown)
    if not result.ok:
        return f"buildkite-agent annotate failed: {result.stderr.strip()}"
    return None


def pipeline(graph: Graph, rows: list[Row], buildkite: Buildkite, env: Mapping[str, str]) -> str:
    """One step per image that would build or be tested (the test stage runs
    in the image's step, so its children start only after it passed),
    `depends_on` following the tree,
    on the queue the upload ran on (Buildkite's BUILDKITE_AGENT_META_DATA_QUEUE),
    with concurrency groups of this pipeline only (Buildkite's are
    organisation-wide)."""
    stale = {r.image for r in rows if r.works}
    queue = buildkite.queue
    scope = buildkite.pipeline_slug or "amis"
    steps = []
    for name, image in graph.images.items():
        if name not in stale:
            continue
        parent = image.parent if image.parent in stale else None
        steps.append({
            "label": f":packer: {name}",
            "key": STEP_KEY.format(name),
            "command": STEP_COMMAND.format(name),
            **({"depends_on": STEP_KEY.format(parent)} if parent else {}),
            **({"agents": {"queue": queue}} if queue else {}),
            "concurrency": 1,
            "concurrency_group": f"{scope}/amis/{name}",
            "artifact_paths": [f".amis/logs/{name}-*.log"],
            "retry": {"automatic": [{"exit_status": -1, "limit": 2},
                                    {"exit_status": 255, "limit": 2}]},
        })
    if not steps:
        steps.append({"label": ":white_check_mark: AMIs up to date",
                      "command": "echo every image is up to date",
                      **({"agents": {"queue": queue}} if queue else {})})
    # Buildkite interpolates ${...} and $NAME in the uploaded YAML; $$ is a "$".
    passed = {k: env[k].replace("$", "$$") for k in PASSED_ON if env.get(k)}
    return yaml.safe_dump({**({"env": passed} if passed else {}), "steps": steps},
                          sort_keys=False)


def write_pipeline(builder: Builder, rows: list[Row], offline: str | None) -> str:
    """``doit pipeline``: write ``.amis/pipeline.yml``; returns what to say.

    The steps are the images that build (``rows``: the plan). Everything
    else is published here, as ``doit amis`` would (the source, and each
    image kept or reused by digest), so the channel ends exactly as after
    ``doit amis``."""
    if offline:
        raise AmiError(f"cannot plan the pipeline offline: {offline}", code=FAILED)
    settings = builder.settings
    builder.pull()
    builder.resolve_source()
    for row in rows:
        if row.image in builder.graph.images and not row.works:
            builder.settle(row.image)
    target = settings.state / "pipeline.yml"
    write_atomic(target, pipeline(builder.graph, rows, settings.buildkite,
                                  settings.env).encode())
    stale = sum(1 for r in rows if r.works)
    shown = target.relative_to(settings.root)
    return (f"wrote {shown}: {stale} image step(s); upload it with: "
            f"buildkite-agent pipeline upload {shown}")


def annotate_run(graph: Graph, rows: list[Row], reports: Reports, settings: Settings,
                 tools: Tools, say: Callable[[str], None]) -> None:
    """``doit annotate``: the last run's table and graph, posted or printed."""
    markdown, style = annotation(graph, Reports.load(reports.path), rows)
    problem = annotate(markdown, style, settings.env, tools, settings.root)
    if problem:
        say(markdown)
        if settings.buildkite.active:
            say(problem)
