"""What ``ami:<name>`` does: act on the image's verdict.

- keep: its current record stays, no Packer;
- reuse: an earlier build of exactly these inputs (another branch, a revert,
  another agent) is made current again, no Packer;
- build: Packer runs, and only a successful build is published.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

from ..adapters import stage
from ..adapters.console import BUILDING, VALIDATING, elapsed
from ..adapters.packer_output import PHASE_ORDER, Masker, Result, phase_of
from ..core.decision import KEEP, REUSE, Verdict
from ..core.digest import source_digest
from ..core.errors import AmiError, FAILED, INTERRUPTED
from ..core.names import MANAGED_BY
from ..core.records import Record, save_local
from ..core.text import table
from ..inputs.template import sensitive_values
from ..state.outcomes import Outcome
from . import attest, gc, invocation, validate, vetting
from .run import Run


def _publish(run: Run, record: Record, *, new_build: bool) -> Record:
    """Make ``record`` current in this run's channel; returns what is current."""
    current = run.registry.publish(record, run.channel()[0], new_build=new_build)
    save_local(run.record_path(current.image), current.body())
    run.lookup.remember(current)
    return current


def pull(run: Run) -> None:
    """The pre-task of every build run: mirror the channel, repair its
    plain-text ids, and say what will be rebuilt because its AMI is gone."""
    run.outcomes.start()
    channel, note = run.channel()
    if note:
        run.say(note)
    status = run.lookup.pull()
    counts = {s: sum(1 for v in status.values() if v == s) for s in sorted(set(status.values()))}
    run.say("pulled channel {} from {}: {}".format(
        channel, run.registry.url(run.settings.prefix),
        ", ".join(f"{n} {s}" for s, n in counts.items())))
    for name in run.lookup.facts.txt_stale:
        # A failed write (or a hand edit) left the plain-text id behind its record.
        record = run.lookup.record(name)
        assert record is not None
        run.registry.write_id(channel, record)
        run.say(f"repaired {run.registry.url(run.registry.id_key(channel, name))}: it now says "
                f"{record.ami}, as the record does", name)
    _repair_ssm(run, channel)
    if run.lookup.facts.others:
        run.say(gc.not_in_graph(channel, run.lookup.facts.others))
    if run.console.view == "live":
        # Only drawn live: deciding here costs a no-op a whole decision (0.9 s on 100 images).
        try:
            run.console.queue(run.lookup.decision().builds())
        except AmiError:
            pass                # the image's own task says why it cannot be decided
        run.console.start()


def _repair_ssm(run: Run, channel: str) -> None:
    """A failed PutParameter (or a hand edit) left an SSM parameter behind its
    record: each run leaves SSM saying what the records say."""
    records = [r for name in run.graph.images if (r := run.lookup.record(name)) is not None]
    wanted = {name: r for r in records if (name := run.registry.ssm_name(channel, r.image))}
    if not wanted:
        return
    for region in sorted({r.region for r in wanted.values()}):
        names = sorted(n for n, r in wanted.items() if r.region == region)
        found = run.aws.ssm_values(region, names)
        for name in names:
            record = wanted[name]
            if found.get(name) != record.ami:
                run.registry.write_ssm(channel, record)
                run.say(f"repaired SSM parameter {name}: it now says {record.ami}, as the "
                        "record does", record.image)


def resolve_source(run: Run) -> Outcome:
    """Record what the source image resolves to now; publish when it moved."""
    start = time.monotonic()
    name = run.graph.source.name
    verdict = run.lookup.decision().verdicts[name]
    if verdict.action == KEEP:
        return run.outcomes.add(Outcome(name, "up to date", verdict.ami or "-",
                                        time.monotonic() - start, verdict.reason))
    if verdict.ami is None:
        raise AmiError(f"source {name}: {verdict.reason}", code=FAILED)
    spec = run.graph.source.spec(run.settings.sandbox)
    how = run.lookup.source_how()
    stamp = run.clock.now().isoformat(timespec="seconds")
    record = Record(image=name, region=run.graph.region, amis={run.graph.region: verdict.ami},
                    digest=source_digest(spec, verdict.ami), source={**spec, "resolved": how},
                    git=run.checkout.git(), build_started=stamp, build_finished=stamp)
    _publish(run, record, new_build=True)
    run.console.done(name, "resolved", f"resolved to {verdict.ami} ({how})")
    return run.outcomes.add(Outcome(name, "resolved", verdict.ami, time.monotonic() - start, how))


def settle(run: Run, name: str) -> Outcome | None:
    """Keep or reuse image ``name`` as ``ami:<name>`` would, never running
    Packer; None when it needs a build after all."""
    verdict = run.lookup.decision().verdicts[name]
    if verdict.action not in (KEEP, REUSE):
        return None
    return bring_up_to_date(run, name, may_build=False)


def bring_up_to_date(run: Run, name: str, *, may_build: bool = True) -> Outcome | None:
    """Act on image ``name``'s verdict. Returns what happened (None: it
    needed a build, and ``may_build`` was False)."""
    start = time.monotonic()
    decision = run.lookup.decision()
    verdict = decision.verdicts[name]
    parent = decision.verdicts[run.graph.images[name].parent]
    if verdict.action == KEEP:
        return _keep(run, verdict, start)
    if parent.ami is None or verdict.digest is None:
        raise AmiError(f"image {name}: parent {parent.image} has no AMI: build it first "
                       f"(doit ami:{parent.image})")
    if verdict.cause == "too-old":
        run.say(f"{verdict.reason}: rebuilding for OS updates", name)
    say = lambda text: run.say(text, name)      # noqa: E731
    if verdict.builds:
        run.say(f"build: {verdict.reason}", name)
    with run.locks.held(name, verdict.digest, say) as lock:
        # Under the lock, look again: another agent may have built these inputs
        # meanwhile, and what was to be reused may be gone (gc takes this lock too).
        run.lookup.forget(name, verdict.digest)
        again = run.lookup.decision().verdicts[name]
        if again.action == KEEP:
            return _keep(run, again, start)
        if again.action == REUSE:
            return _reuse(run, again, start)
        if not may_build:
            return None
        invocation.preflight(run, name)
        if run.settings.signing_key:
            run.signer()          # a key that cannot sign stops the build before Packer
        notes = [f"build {name}: {again.reason}"]
        validating = time.monotonic()
        if run.settings.validate:
            run.console.phase(name, VALIDATING)
            checks = validate.image(run, name, say)
            if validate.lint(run, [name], say):
                checks.append("ansible-lint")
            notes.append(f"validated: {', '.join(checks)}")
        record = _run_packer(run, name, parent, verdict.digest, notes,
                             round(time.monotonic() - validating, 1))
        published = _publish(run, record, new_build=True)
    copies = "".join(f", {r}: {a}" for r, a in record.amis.items() if r != record.region)
    run.console.done(name, "built", f"built {record.ami}{copies} in "
                     f"{elapsed(time.monotonic() - start)}")
    if published is not record:
        run.say(f"a build that started later ({published.ami}, commit "
                f"{str(published.git.get('commit', '?'))[:12]}) is current; left it so"
                + (" (this build had lost its lock)" if lock.lost else ""), name)
    return run.outcomes.add(Outcome(name, "built", record.ami, time.monotonic() - start))


def _keep(run: Run, verdict: Verdict, start: float) -> Outcome:
    assert verdict.record is not None
    run.console.detail(f"up to date: inputs unchanged (digest {str(verdict.digest)[:12]}), "
                       f"{verdict.record.ami}", verdict.image)
    run.console.done(verdict.image, "up to date",
                     f"up to date: {verdict.reason}" if verdict.cause == "promoted" else "")
    return run.outcomes.add(Outcome(verdict.image, "up to date", verdict.record.ami,
                                    time.monotonic() - start))


def _reuse(run: Run, verdict: Verdict, start: float) -> Outcome:
    assert verdict.record is not None
    earlier = verdict.record
    _publish(run, earlier, new_build=False)
    built_on = earlier.git.get("branch") if earlier.git else None
    run.console.done(verdict.image, "reused",
                     f"reused {earlier.ami} by digest {earlier.digest[:12]}: an earlier build "
                     "has these inputs" + (f" (built on {built_on})" if built_on else ""))
    return run.outcomes.add(Outcome(verdict.image, "reused", earlier.ami,
                                    time.monotonic() - start, "by digest"))


def _run_packer(run: Run, name: str, parent: Verdict, digest: str,
                notes: list[str], validated: float) -> Record:
    graph, settings = run.graph, run.settings
    image = graph.images[name]
    assert parent.ami is not None
    exe = run.packers.executable()
    env = run.aws.subprocess_env()
    version = run.packers.version()
    git = run.checkout.git()
    started = run.clock.now()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    variables = {**dict(image.vars), **invocation.build_variables(
        name, graph.region, image.playbook, source_ami=parent.ami, parent_image=parent.image,
        digest=digest, git=git, build_time=stamp, packer_version=version)}
    tags = {"Image": name, "Digest": digest, "ManagedBy": MANAGED_BY}
    with invocation.prepared(run, name, variables, sandbox=settings.sandbox,
                          endpoint=run.aws.endpoint(), tags=tags, env=env) as job:
        run.console.phase(name, BUILDING)
        notes.append(f"building on {parent.image} {parent.ami} with {image.template}")
        if job.dropped:
            notes.append(f"sandbox: left out {', '.join(job.dropped)} (they need an instance "
                         "to connect to)")
        for note in notes:
            run.console.detail(note, name)
        copying = f"copying to {', '.join(image.regions[1:])}" if image.regions[1:] else None
        reached = [-1]                      # how far through PHASE_ORDER the build is

        def echo(text: str) -> None:
            run.console.detail(text, name)
            phase = phase_of(text)
            if phase and PHASE_ORDER.index(phase) > reached[0]:
                reached[0] = PHASE_ORDER.index(phase)
                if phase != "copying" or copying:
                    run.console.phase(name, copying if phase == "copying" else phase)
        inputs = run.checkout.inputs()[name]
        mask = Masker(sensitive_values(
            inputs.template, {**inputs.var_values, **variables}, job.env))
        for attempt in range(settings.retries + 1):
            log = settings.logs / f"{name}-{stamp}{f'-retry{attempt}' if attempt else ''}.log"
            result = run.packers.run(
                job.argv(exe, "build", "-machine-readable", "-color=false"), job.env, job.cwd,
                log, echo, mask, lambda instance: run.aws.require_imdsv2(graph.region, instance),
                timeout=image.build_timeout, header=notes)
            if result.ok or not result.transient or result.timed_out or \
                    attempt == settings.retries:
                break
            delay = backoff(attempt, settings.retry_base)
            run.say(f"transient AWS error ({result.reason()}); trying again in {delay:.0f} s "
                    f"({attempt + 2} of {settings.retries + 1}); log: {log}", name)
            if run.interrupts.wait(delay):
                raise AmiError(f"image {name}: interrupted while waiting to retry; "
                               "nothing recorded", code=INTERRUPTED)
        changed = job.changed()
        made = [(r, a) for ids in (result.builds or {"": result.amis}).values()
                for r, a in ids.items()]
        try:
            result.errors[:] = [stage.to_user(e, job.root, graph.root) for e in result.errors]
            _check_result(name, image.regions, result, log)
            if changed:
                more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
                raise AmiError(f"image {name}: {changed[0]}{more} changed in the stage while "
                               "Packer ran (a step wrote to its inputs): the AMI is not what its "
                               f"digest says; nothing published; log: {log}", FAILED)
            vetting.vet(run.aws, name, image.share_with, digest, started, result.amis)
            record = Record(
                image=name, region=graph.region,
                amis={r: result.amis[r] for r in image.regions}, digest=digest,
                parent={"image": parent.image, "ami": parent.ami}, git=git,
                settings=run.checkout.digest_settings(name), packer_version=version,
                build_started=started.isoformat(timespec="seconds"),
                build_finished=run.clock.now().isoformat(timespec="seconds"), build_log=log.name,
                validated_seconds=validated, inputs=run.checkout.manifest(name))
            if run.settings.signing_key:
                run.console.phase(name, "signing")
            record = attest.sign(run, record, log)
        except AmiError:
            removed = vetting.discard(run.aws, name, digest, started, made)
            if removed:
                run.say(f"deregistered what the failed build made: {', '.join(removed)}", name)
            run.console.show_log(name, log)
            raise
    return record


def _check_result(name: str, regions: tuple[str, ...], result: Result, log: Path) -> None:
    if not result.ok:
        raise AmiError(f"image {name}: {result.reason()}; nothing published, the previous "
                       f"AMI stays current; log: {log}", code=FAILED)
    if len(result.builds) > 1:
        raise AmiError(f"image {name}: Packer ran {len(result.builds)} builds "
                       f"({', '.join(sorted(result.builds))}), each making an AMI, and an image "
                       f"records one: name its source with only: in amis.yaml; nothing "
                       f"published; log: {log}", code=FAILED)
    missing = [r for r in regions if r not in result.amis]
    if missing:
        raise AmiError(f"image {name}: Packer made no AMI in {', '.join(missing)}; "
                       f"nothing published; log: {log}", code=FAILED)


def backoff(attempt: int, base: float, cap: float = 600.0) -> float:
    """Seconds before retry number ``attempt`` (0-based): exponential, jittered."""
    return min(cap, base * 2 ** attempt) * random.uniform(0.5, 1.0)


def summary(run: Run) -> str:
    rows = []
    for name in run.graph.names:
        record = run.lookup.record(name)
        outcome = run.outcomes.get(name)
        what = outcome.action if outcome else ("up to date" if record else "not built")
        if outcome and outcome.note == "by digest":
            what = "reused by digest"
        took = elapsed(outcome.seconds) if outcome and outcome.action == "built" else ""
        rows.append([name, record.ami if record else "-", what, took])
    built = [record for name in run.graph.images
             if (outcome := run.outcomes.get(name)) and outcome.action == "built"
             and (record := run.lookup.record(name))]
    logs = [record.build_log for record in built if record.build_log]
    shown = table(rows, ["image", "ami", "this run", "took"])
    if logs:
        where = run.settings.logs.relative_to(run.settings.root) \
            if run.settings.logs.is_relative_to(run.settings.root) else run.settings.logs
        shown += f"\nbuild logs in {where}/: {', '.join(logs)}"
    signed = [record.image for record in built if record.provenance]
    if signed:
        shown += (f"\nsigned the provenance of {', '.join(signed)} with "
                  f"{run.settings.signing_key}: doit verify -i <image> checks one")
    return shown
