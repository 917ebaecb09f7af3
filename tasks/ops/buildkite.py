"""Buildkite: the run's annotation and the dynamic pipeline for many agents."""

from __future__ import annotations

import subprocess
from typing import Mapping

import yaml

from ..adapters.tools import find
from ..core.errors import AmiError, FAILED
from ..core.files import write_atomic
from ..core.graph import Graph
from ..core.settings import Buildkite
from ..state.outcomes import Outcome, Outcomes
from . import build, diagram
from .plan import Row, planned
from .run import Run

STEP_KEY = "ami-{}"
# ./doit installs what the agent lacks (.ci/install), into an environment kept
# outside the checkout: a kept agent's `git clean -ffxdq` does not remove it.
STEP_COMMAND = "./doit ami:{}"
# Settings the generated steps need on whichever agent runs them.
PASSED_ON = ("AMI_BUCKET", "AMI_PREFIX", "AMI_CHANNEL", "AMI_SSM_PREFIX", "AMI_PACKER_RETRIES",
             "AMI_RETRY_BASE_SECONDS", "AMI_LOCK_TTL_SECONDS", "AMI_DEFAULT_BRANCH")


def annotation(graph: Graph, outcomes: dict[str, Outcome], rows: list[Row]) -> tuple[str, str]:
    """Markdown for `buildkite-agent annotate`, and its style."""
    failed = [o for o in outcomes.values() if o.action == "failed"]
    lines = ["### AMIs", "", "| image | this run | AMI | took | note |", "|---|---|---|---|---|"]
    by_image = {r.image: r for r in rows}
    for name in graph.names:
        outcome = outcomes.get(name)
        action = outcome.action if outcome else "up to date"
        ami = outcome.ami if outcome and outcome.ami != "-" else (by_image[name].ami or "-")
        took = f"{outcome.seconds:.0f}s" if outcome and action in ("built", "failed") else ""
        note = (outcome.note if outcome else "").replace("|", "\\|")
        lines.append(f"| {name} | {action} | `{ami}` | {took} | {note} |")
    lines += ["", "```mermaid", diagram.mermaid(graph, rows), "```"]
    return "\n".join(lines) + "\n", "error" if failed else "success"


def annotate(markdown: str, style: str, env: Mapping[str, str]) -> str | None:
    """Post the annotation when buildkite-agent is there. Returns why it was
    not posted, or None."""
    agent = find("buildkite-agent", env)
    if not agent:
        return "buildkite-agent is not installed"
    result = subprocess.run([agent, "annotate", "--style", style, "--context", "amis"],
                            input=markdown, text=True, capture_output=True, env=dict(env))
    if result.returncode != 0:
        return f"buildkite-agent annotate failed: {result.stderr.strip()}"
    return None


def pipeline(graph: Graph, rows: list[Row], buildkite: Buildkite, env: Mapping[str, str]) -> str:
    """One step per image that would build, `depends_on` following the tree,
    on the queue the upload ran on (Buildkite's BUILDKITE_AGENT_META_DATA_QUEUE),
    with concurrency groups of this pipeline only (Buildkite's are
    organisation-wide)."""
    stale = {r.image for r in rows if r.builds}
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
    passed = {k: env[k] for k in PASSED_ON if env.get(k)}
    return yaml.safe_dump({**({"env": passed} if passed else {}), "steps": steps},
                          sort_keys=False)


def write_pipeline(run: Run) -> str:
    """``doit pipeline``: write ``.amis/pipeline.yml``; returns what to say.

    The steps are the images that build. Everything else is published here,
    as ``doit amis`` would (the source, and each image kept or reused by
    digest), so the channel ends exactly as after ``doit amis``."""
    rows, offline = planned(run)
    if offline:
        raise AmiError(f"cannot plan the pipeline offline: {offline}", code=FAILED)
    build.pull(run)
    build.resolve_source(run)
    for row in rows:
        if row.image in run.graph.images and not row.builds:
            build.settle(run, row.image)
    target = run.settings.state / "pipeline.yml"
    write_atomic(target, pipeline(run.graph, rows, run.settings.buildkite,
                                  run.settings.env).encode())
    stale = sum(1 for r in rows if r.builds)
    shown = target.relative_to(run.settings.root)
    return (f"wrote {shown}: {stale} image step(s); upload it with: "
            f"buildkite-agent pipeline upload {shown}")


def annotate_run(run: Run) -> None:
    """``doit annotate``: the last run's table and graph, posted or printed."""
    rows, _ = planned(run)
    markdown, style = annotation(run.graph, Outcomes.load(run.outcomes.path), rows)
    problem = annotate(markdown, style, run.settings.env)
    if problem:
        run.say(markdown)
        if run.settings.buildkite.active:
            run.say(problem)
