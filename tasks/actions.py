"""The doit actions: each receives the run, does one task's work through
the modules below, and turns a user-facing failure into a failed task with
its one line (never a traceback)."""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any, Callable

from doit.exceptions import TaskFailed

from . import (build, buildkite, cloud_init, console, decision, diagram, emulator,
               explain as explaining, facts, gc as collecting, packing, plan as planning,
               provenance,
               validate)
from .config import CHANNEL_RE
from .errors import AmiError
from .records import read_local, save_local, write_atomic
from .run import Outcome, Run



def _action(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run an action; a user-facing failure fails the task with its one line."""
    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except AmiError as err:
            return TaskFailed(str(err))
        return result if isinstance(result, dict) else None
    return run


# -- building ----------------------------------------------------------------

@_action
def pull(run: Run) -> None:
    run.outcomes.start()
    channel, note = run.channel()
    if note:
        run.say(note)
    status = facts.pull(run)
    counts = {s: sum(1 for v in status.values() if v == s) for s in sorted(set(status.values()))}
    run.say("pulled channel {} from s3://{}/{}: {}".format(
        channel, run.settings.bucket, run.settings.prefix,
        ", ".join(f"{n} {s}" for s, n in counts.items())))
    for name in run.facts.txt_stale:
        # A failed write (or a hand edit) left the plain-text id behind its record.
        record = run.facts.records[name]
        assert record is not None
        run.registry.write_id(channel, record)
        run.say(f"repaired {run.registry.url(run.registry.id_key(channel, name))}: it now says "
                f"{record.ami}, as the record does", name)
    for name in run.graph.names:
        record = run.facts.records.get(name)
        if record is not None and not run.facts.amis.get(record.ami, True):
            run.say(f"recorded AMI {record.ami} no longer exists: it will be rebuilt", name)


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
    if not run.facts.amis.get(record.ami, True):
        return False
    image = run.graph.images.get(name)
    return not (image and decision.too_old(record, image, None))


@_action
def source(run: Run) -> dict[str, str]:
    outcome = build.resolve_source(run)
    record = run.facts.records.get(outcome.image)
    return {"digest": record.digest if record else ""}


@_action
def image(run: Run, name: str) -> dict[str, str]:
    started = time.monotonic()
    try:
        build.bring_up_to_date(run, name)
    except AmiError as err:
        run.outcomes.add(Outcome(name, "failed", "-", time.monotonic() - started, str(err)))
        raise
    record = run.facts.records.get(name)
    return {"digest": record.digest if record else ""}


@_action
def summary(run: Run) -> None:
    if not run.outcomes.started:            # plan, graph, ...: no build run
        return
    run.say(build.summary(run))
    if buildkite.under_buildkite():
        annotate(run)


# -- seeing ------------------------------------------------------------------

def _planned(run: Run) -> tuple[list[planning.Row], str | None]:
    facts.pull(run, offline_ok=True)
    result = facts.decide(run)
    return planning.rows(run.graph, result, run.facts.records), run.facts.offline


@_action
def plan(run: Run, jobs: int) -> None:
    channel, note = run.channel()
    rows, offline = _planned(run)
    run.say(f"channel {channel}" + (f" ({note})" if note else ""))
    run.say(planning.render(rows, run.graph, jobs or 1, offline))


@_action
def graph(run: Run, fmt: str) -> None:
    rows, offline = _planned(run)
    run.say(diagram.render(fmt, run.graph, rows))
    if offline:
        run.say(f"%% offline ({offline}): statuses from local records"
                if fmt == "mermaid" else f"// offline ({offline})")


@_action
def pipeline(run: Run) -> None:
    rows, offline = _planned(run)
    if offline:
        raise AmiError(f"cannot plan the pipeline offline: {offline}")
    target = run.settings.state / "pipeline.yml"
    write_atomic(target, buildkite.pipeline(run.graph, rows, dict(os.environ)).encode())
    stale = sum(1 for r in rows if r.builds)
    shown = target.relative_to(run.settings.root)
    run.say(f"wrote {shown}: {stale} image step(s); upload it with: "
            f"buildkite-agent pipeline upload {shown}")


@_action
def annotate(run: Run) -> None:
    rows, _ = _planned(run)
    markdown, style = buildkite.annotation(run.graph, run.outcomes.load(run.outcomes.path), rows)
    problem = buildkite.annotate(markdown, style)
    if problem:
        run.say(markdown)
        if buildkite.under_buildkite():
            run.say(problem)


@_action
def explain(run: Run, ami: str) -> None:
    run.aws.check_bucket(run.graph.region)
    records = sorted(run.settings.records.glob("*.json"))
    run.say(explaining.render(explaining.ancestry(run.registry, records, ami), ami))


# -- checking ----------------------------------------------------------------

@_action
def validate_image(run: Run, name: str) -> None:
    packing.check_versions(run, name)
    checks = validate.image(run, name, lambda text: run.say(text, name))
    run.say(f"{', '.join(checks)}: passed", name)


@_action
def lint(run: Run) -> None:
    if validate.lint(run, list(run.graph.images), run.say):
        run.say("ansible-lint passed")


@_action
def inputs(run: Run, image: str) -> None:
    names = list(run.graph.images) if image in ("", "all") else [image]
    for name in names:
        run.require_graph_image(name)
        found = run.inputs()[name]
        run.say(f"{name}: {len(found.files)} inputs ({found.kind}; template "
                f"{found.template.path}, Packer runs in {run.graph.images[name].packer_dir})")
        run.say(console.table([[path, why] for path, why in found.files.items()],
                              ["input", "why"]))
        if found.dropped_in_sandbox:
            run.say(f"the sandbox leaves out {', '.join(found.dropped_in_sandbox)}")


@_action
def render_user_data(run: Run, image: str, environment: str, target: str) -> None:
    root = run.settings.root
    variables = cloud_init.load_environments(root)[environment]
    text = cloud_init.render(root, image, environment, variables)
    cloud_init.check(text, f"{cloud_init.TEMPLATES}/{image}.yaml.j2 ({environment})")
    path = root / target
    write_atomic(path, text.encode())
    cloud_init.schema_check(path)


# -- operating ---------------------------------------------------------------

@_action
def gc(run: Run, apply: bool, keep: int, days: float, most: int, leftover_hours: float) -> None:
    if keep < 1 or days < 0 or most < 0 or leftover_hours < 0:
        raise AmiError("gc: --keep must be at least 1; --days, --max and --leftover-hours "
                       "must not be negative")
    run.aws.check_bucket(run.graph.region)
    candidates = collecting.plan_gc(run, keep, days)
    doomed = collecting.delete(run, candidates, most) if apply else \
        collecting.doomed(candidates, most)
    gone = {c.ami for c in doomed}
    rows = [[c.image, c.region, c.ami, c.created.strftime("%Y-%m-%d %H:%M"),
             ("deleted" if apply else "would delete") if c.ami in gone
             else ("keep" if c.keep else "later (over --max)"),
             "; ".join(c.keep) or f"older than {days:g} days, not among the newest {keep}"]
            for c in candidates]
    run.say(console.table(rows, ["image", "region", "ami", "created", "action", "why"])
            if rows else "no AMIs built by this project")
    left = collecting.leftovers(run, leftover_hours, apply)
    for item in left:
        run.say(f"{'removed' if apply else 'would remove'} Packer leftover: {item}")
    if apply:
        snapshots = sum(len(c.snapshots) for c in doomed)
        run.say(f"deleted {len(doomed)} AMI(s) and {snapshots} snapshot(s), removed "
                f"{len(left)} leftover(s); {len(candidates) - len(doomed)} AMI(s) kept")
    else:
        given = {"keep": keep, "days": days, "max": most, "leftover-hours": leftover_hours}
        options = "".join(f" --{name} {value:g}" for name, value in given.items()
                          if value != collecting.DEFAULTS[name])
        run.say(f"dry run: {len(doomed)} AMI(s) and {len(left)} leftover(s) would go; "
                f"run `doit gc{options} --apply` to delete them")


@_action
def promote(run: Run, image: str, source: str, target: str) -> None:
    for what, name in (("--from", source), ("--to", target)):
        if not name or not CHANNEL_RE.fullmatch(name):
            raise AmiError(f"promote {what}={name!r}: give a channel name ([a-z0-9_-])")
    graph = run.graph
    images = graph.names if image == "all" else [image]
    if image != "all" and image not in graph.names:
        raise AmiError(f"promote --image={image!r}: no such image in amis.yaml "
                       f"(one of {', '.join(graph.names)}, or all)")
    who = provenance.actor(run.settings.root)
    active = run.channel()[0]
    records = [run.registry.record_at(run.registry.current_key(source, n), n) for n in images]
    existing = run.aws.existing_amis(graph.region, sorted({r.ami for r in records if r}))
    for name in images:         # every image checked before any moves
        run.registry.promotion_plan(name, source, target, existing)
    for name in images:
        promoted, replaced, current = run.registry.promote(name, source, target, who, existing)
        if target == active:
            save_local(run.record_path(name), current.body())
        run.say(f"channel {target}: {replaced.ami if replaced else 'nothing'} -> "
                f"{promoted.ami} (from {source}, by {who})", name)


@_action
def sandbox_stop(run: Run) -> None:
    run.say(emulator.stop(run.settings.state))
