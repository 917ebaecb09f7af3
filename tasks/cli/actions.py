"""The doit actions: each receives the run, does one task's work through
``ops``, and turns a user-facing failure into a failed task with its one
line (never a traceback)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable

from ..adapters import emulator
from ..core import decision
from ..core.errors import AmiError
from ..core.records import read_local
from ..ops import (build, buildkite, cloud_init, diagram, explain as explaining, gc as collecting,
                   listing, plan as planning, promote as promoting, revoke as revoking,
                   validate, verify as verifying)
from ..ops.run import Run
from ..state.outcomes import Outcome
from .reporter import Failed


def _action(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an action; a user-facing failure fails the task with its one line."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except AmiError as err:
            return Failed(str(err), err.code)
        return result if isinstance(result, dict) else None
    return run


# -- building ----------------------------------------------------------------

@_action
def pull(run: Run) -> None:
    build.pull(run)


def ami_up_to_date(task: Any, values: dict[str, Any], run: Run) -> bool:
    """doit's extra check on ``ami:<name>``: up to date only while the local
    record is the one this task last settled on (a pull that brings another
    agent's record makes it run again), its AMI still exists and it is not
    older than the image's max_age_days. File changes are doit's file_dep."""
    name = task.name.split(":", 1)[1]
    try:
        record = read_local(Path(task.targets[0]))
    except AmiError:
        return False
    if record is None or values.get("digest") != record.digest:
        return False
    if not run.lookup.usable(record):
        return False
    image = run.graph.images.get(name)
    return not (image and decision.too_old(record, image, None))


def _digest(run: Run, name: str) -> dict[str, str]:
    """What doit keeps of ``ami:<name>`` for ami_up_to_date: the digest settled on."""
    record = run.lookup.record(name)
    return {"digest": record.digest if record else ""}


@_action
def source(run: Run) -> dict[str, str]:
    outcome = build.resolve_source(run)
    return _digest(run, outcome.image)


@_action
def image(run: Run, name: str) -> dict[str, str]:
    started = time.monotonic()
    try:
        build.bring_up_to_date(run, name)
    except AmiError as err:
        run.outcomes.add(Outcome(name, "failed", "-", time.monotonic() - started, str(err)))
        run.console.done(name, "failed", "failed")
        raise
    return _digest(run, name)


def skipped(run: Run, name: str) -> None:
    """Image ``name`` did not build, because an image it is built on failed."""
    if name in run.graph.images:
        parent = run.graph.images[name].parent
        run.outcomes.add(Outcome(name, "skipped", "-", 0.0, f"{parent} did not build"))
        run.console.done(name, "skipped", f"skipped: {parent} did not build")


@_action
def summary(run: Run) -> None:
    if not run.outcomes.started:            # plan, graph, ...: no build run
        return
    run.console.heading("amis")
    run.say(build.summary(run))
    if run.settings.buildkite.active:
        buildkite.annotate_run(run)


# -- seeing ------------------------------------------------------------------

@_action
def plan(run: Run, jobs: int) -> None:
    channel, note = run.channel()
    rows, offline = planning.planned(run)
    run.say(f"channel {channel}" + (f" ({note})" if note else ""))
    run.say(planning.render(rows, run.graph, jobs or 1, offline))
    unsigned = planning.unsigned(run.graph, run.lookup.facts.records)
    if unsigned:
        run.say(f"unsigned: {', '.join(unsigned)} (built without AMI_SIGNING_KEY: no provenance "
                "for doit verify to check)")
    if run.lookup.facts.others:
        run.say(collecting.not_in_graph(channel, run.lookup.facts.others))


@_action
def graph(run: Run, format: str) -> None:
    rows, offline = planning.planned(run)
    run.say(diagram.render(format, run.graph, rows))
    if offline:
        run.say(f"%% offline ({offline}): statuses from local records"
                if format == "mermaid" else f"// offline ({offline})")


@_action
def pipeline(run: Run) -> None:
    run.say(buildkite.write_pipeline(run))


@_action
def annotate(run: Run) -> None:
    buildkite.annotate_run(run)


@_action
def explain(run: Run, ami: str) -> None:
    run.say(explaining.explain(run, ami))


# -- checking ----------------------------------------------------------------

@_action
def validate_image(run: Run, name: str) -> None:
    validate.check_image(run, name)


@_action
def lint(run: Run) -> None:
    validate.check_lint(run)


@_action
def inputs(run: Run, image: str) -> None:
    listing.show_inputs(run, image)


@_action
def render_user_data(run: Run, image: str, environment: str, target: str) -> None:
    cloud_init.render_to(run.settings.root, image, environment, run.settings.root / target,
                         run.settings.env)


# -- operating ---------------------------------------------------------------

@_action
def gc(run: Run, apply: bool, keep: int, days: float, most: int, leftover_hours: float) -> None:
    collecting.collect(run, apply, keep, days, most, leftover_hours)


@_action
def promote(run: Run, image: str, source: str, target: str) -> None:
    promoting.promote(run, image, source, target)


@_action
def verify(run: Run, ami: str, image: str, key: str, worktree: bool) -> None:
    verifying.verify(run, ami, image, key, worktree)


@_action
def revoke(run: Run, ami: str, image: str, reason: str, undo: bool, disable: bool) -> None:
    revoking.revoke(run, ami, image, reason, undo, disable)


@_action
def sandbox_stop(run: Run) -> None:
    run.say(emulator.stop(run.settings.state))
