"""The doit actions: each receives the run's composition root (``App``),
hands one command's services to ``ops``, and turns a user-facing failure
into a failed task with its one line (never a traceback).

Commands other than building import their ``ops`` modules when they run:
every doit call loads this module, and a no-op build pays only for what
building needs."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any, Callable

from typing import TYPE_CHECKING

from ..core import decision
from ..core.errors import INTERRUPTED, REJECTED, AmiError
from ..core.outcome import Outcome
from ..core.records import read_local
from ..state.reports import Report
from .compose import App
from .reporter import Failed

if TYPE_CHECKING:
    from ..ops.plan import Row


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


def _planned(app: App) -> tuple[list[Row], str | None]:
    from ..ops.plan import planned
    return planned(app.graph, app.lookup, app.prebuild)


# -- building ----------------------------------------------------------------

@_action
def pull(app: App) -> None:
    app.builder.pull()


def ami_up_to_date(task: Any, values: dict[str, Any], app: App) -> bool:
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
    if app.lookup.asked_to_rebuild(name):
        return False
    if not app.lookup.usable(record):
        return False
    image = app.graph.images.get(name)
    return not (image and decision.too_old(record, image, None))


def _digest(app: App, name: str) -> dict[str, str]:
    """What doit keeps of ``ami:<name>`` for ami_up_to_date: the digest settled on."""
    record = app.lookup.record(name)
    return {"digest": record.digest if record else ""}


@_action
def source(app: App) -> dict[str, str]:
    report = app.builder.resolve_source()
    return _digest(app, report.image)


@_action
def image(app: App, name: str) -> dict[str, str]:
    started = time.monotonic()
    try:
        app.builder.bring_up_to_date(name)
    except AmiError as err:
        outcome = {REJECTED: Outcome.REJECTED, INTERRUPTED: Outcome.INTERRUPTED}.get(
            err.code, Outcome.FAILED)
        app.reports.add(Report(name, outcome, "-", time.monotonic() - started, str(err)))
        app.console.done(name, outcome, str(outcome))
        raise
    return _digest(app, name)


def skipped(app: App, name: str) -> None:
    """Image ``name`` did not build, because an image it is built on failed."""
    if name in app.graph.images:
        parent = app.graph.images[name].parent
        held = app.reports.get(parent)
        why = f"{parent} was rejected by its tests" if held is not None \
            and held.outcome is Outcome.REJECTED else f"{parent} did not build"
        app.reports.add(Report(name, Outcome.SKIPPED, "-", 0.0, why))
        app.console.done(name, Outcome.SKIPPED, f"skipped: {why}")


@_action
def summary(app: App) -> None:
    if not app.reports.started:            # plan, graph, ...: no build run
        return
    app.console.heading("amis")
    app.say(app.builder.summary())
    if app.settings.buildkite.active:
        _annotate(app)


# -- seeing ------------------------------------------------------------------

@_action
def plan(app: App, jobs: int, rebuild: str = "") -> None:
    from ..ops import plan as planning
    from ..ops.build import not_in_graph
    from .options import rebuilt
    if rebuild:
        app.lookup.rebuild(rebuilt(rebuild.split(","), app.graph))
    channel, note = app.checkout.channel()
    rows, offline = _planned(app)
    app.say(f"channel {channel}" + (f" ({note})" if note else ""))
    # offline, the plan also says whose local records it read (the sandbox's are not AWS's)
    offline = offline and f"{offline}; {app.lookup.facts.mirror}"
    app.say(planning.render(rows, app.graph, jobs or 1, offline, app.console.width()))
    unsigned = planning.unsigned(app.graph, app.lookup.facts.records)
    if unsigned:
        app.say(f"unsigned: {', '.join(unsigned)} (built without AMI_SIGNING_KEY: no provenance "
                "for doit verify to check; to sign them, set AMI_SIGNING_KEY and run doit amis "
                f"--rebuild {','.join(unsigned)})")
    if app.lookup.facts.others:
        app.say(not_in_graph(channel, app.lookup.facts.others))


@_action
def graph(app: App, format: str) -> None:
    from ..ops import diagram
    rows, offline = _planned(app)
    app.say(diagram.render(format, app.graph, rows))
    if offline:
        app.say(f"%% offline ({offline}): statuses from local records"
                if format == "mermaid" else f"// offline ({offline})")


@_action
def pipeline(app: App) -> None:
    from ..ops import buildkite
    rows, offline = _planned(app)
    app.say(buildkite.write_pipeline(app.builder, rows, offline))


def _annotate(app: App) -> None:
    from ..ops import buildkite
    rows, _ = _planned(app)
    buildkite.annotate_run(app.graph, rows, app.reports, app.settings, app.tools, app.say)


@_action
def annotate(app: App) -> None:
    _annotate(app)


@_action
def explain(app: App, ami: str) -> None:
    from ..ops.explain import explain
    app.say(explain(app.registry, app.settings.records, ami))


# -- checking ----------------------------------------------------------------

@_action
def validate_image(app: App, name: str) -> None:
    app.prebuild.check_image(name, app.say)


@_action
def packer_reads(app: App, name: str, others: list[str]) -> None:
    app.prebuild.packer_reads(name, app.say, others)


@_action
def lint(app: App) -> None:
    app.prebuild.check_lint(app.say)


@_action
def inputs(app: App, image: str) -> None:
    from ..ops import listing
    listing.show_inputs(app.graph, app.checkout, app.say, image)


@_action
def render_user_data(app: App, image: str, environment: str, target: str) -> None:
    from ..ops import cloud_init
    cloud_init.render_to(app.settings.root, image, environment, app.settings.root / target,
                         app.settings.env, app.tools)


# -- operating ---------------------------------------------------------------

@_action
def gc(app: App, apply: bool, keep: int, days: float, most: int, leftover_hours: float) -> None:
    app.collector.collect(apply, keep, days, most, leftover_hours)


@_action
def promote(app: App, image: str, source: str, target: str) -> None:
    app.promoter.promote(image, source, target)


@_action
def verify(app: App, ami: str, image: str, key: str, worktree: bool,
           require_tests: bool) -> None:
    app.verifier.verify(ami, image, key, worktree, require_tests)


@_action
def test(app: App, image: str) -> None:
    from ..ops.acceptance import retest
    retest(app.graph, app.registry, app.checkout, app.acceptor, app.console, image)


@_action
def revoke(app: App, ami: str, image: str, reason: str, undo: bool, disable: bool) -> None:
    app.revoker.revoke(ami, image, reason, undo, disable)


@_action
def sandbox_stop(root: Path) -> None:
    from ..adapters import emulator
    from ..core.settings import load_settings
    print(emulator.stop(load_settings(root).state), flush=True)
