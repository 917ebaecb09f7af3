"""What ``ami:<name>`` does: reuse an AMI whose digest matches, else build.

Order of preference for an image whose task runs:

1. the pulled current record, when its digest equals ours and its AMI exists;
2. a record in the bucket under ``digests/<image>/<digest>.json`` (an earlier
   build, maybe on another branch, of exactly these inputs);
3. a Packer build. Only a successful one is published.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from . import aws, console, digest, locks, packer, provenance, registry
from .config import Settings, packer_executable
from .errors import AmiError
from .graph import Graph, Image
from .inputs import image_inputs


@dataclass
class Outcome:
    image: str
    action: str          # "built", "reused", "resolved"
    ami: str
    seconds: float
    note: str = ""


OUTCOMES: dict[str, Outcome] = {}     # this run's, for the summary table
GONE: set[str] = set()                # images whose recorded AMI was deregistered
_lock = threading.Lock()
_packer_version: dict[str, str] = {}


def _now() -> datetime:
    return datetime.now(timezone.utc)


def run_file(settings: Settings) -> Path:
    """This run's outcomes, kept for `doit annotate` (which runs after a failure too)."""
    return settings.state / "last-run.json"


def start_run(settings: Settings) -> None:
    with _lock:
        OUTCOMES.clear()
        registry.write_atomic(run_file(settings), b"{}\n")


def _record(settings: Settings, outcome: Outcome) -> Outcome:
    with _lock:
        OUTCOMES[outcome.image] = outcome
        body = json.dumps({k: asdict(v) for k, v in OUTCOMES.items()}, indent=2, sort_keys=True)
        registry.write_atomic(run_file(settings), (body + "\n").encode())
    return outcome


def record_failure(settings: Settings, name: str, err: AmiError, seconds: float) -> None:
    _record(settings, Outcome(name, "failed", "-", seconds, str(err)))


def load_run(settings: Settings) -> dict[str, Outcome]:
    try:
        data = json.loads(run_file(settings).read_text())
        return {k: Outcome(**v) for k, v in data.items()}
    except (OSError, ValueError, TypeError):
        return {}


def _parent_record(settings: Settings, graph: Graph, name: str) -> registry.Record:
    parent = graph.images[name].parent
    record = registry.read_local(settings.record_path(parent))
    if record is None:
        raise AmiError(f"image {name}: parent {parent} has no record: build it first "
                       f"(doit ami:{parent})")
    return record


def current_digest(settings: Settings, graph: Graph, name: str,
                   parent_ami: str) -> tuple[str, dict[str, str]]:
    image = graph.images[name]
    inputs = digest.manifest(graph.root, image_inputs(graph, image))
    return digest.image_digest(inputs, parent_ami, image.settings(settings.sandbox)), inputs


def resolve_source(settings: Settings, graph: Graph) -> Outcome:
    """Record what the source image resolves to now; publish when it moved."""
    start = time.monotonic()
    source = graph.source
    ami, how = aws.resolve_source(settings, source, graph.region)
    spec = source.spec(settings.sandbox)
    current = registry.read_local(settings.record_path(source.name))
    if current and current.ami == ami and current.source == {**spec, "resolved": how}:
        return _record(settings, Outcome(source.name, "reused", ami, time.monotonic() - start, how))
    stamp = _now().isoformat(timespec="seconds")
    record = registry.Record(
        image=source.name, region=graph.region, amis={graph.region: ami},
        digest=digest.source_digest(spec, ami), source={**spec, "resolved": how},
        git=provenance.git_info(graph.root), build_started=stamp, build_finished=stamp,
    )
    registry.publish(settings, record, provenance.channel(settings)[0], new_build=True)
    console.say(f"source resolves to {ami} ({how})", source.name)
    return _record(settings, Outcome(source.name, "resolved", ami, time.monotonic() - start, how))


def find_gone_amis(settings: Settings, graph: Graph) -> list[str]:
    """Images whose recorded AMI no longer exists (deregistered by hand):
    their tasks must run again even though their inputs did not change."""
    records = {n: registry.read_local(settings.record_path(n)) for n in graph.names}
    ids = {r.ami: n for n, r in records.items() if r}
    existing = aws.existing_amis(settings, graph.region, sorted(ids)) if ids else set()
    gone = sorted(n for ami, n in ids.items() if ami not in existing)
    for name in gone:
        console.say(f"recorded AMI {records[name].ami} no longer exists: it will be rebuilt", name)
    GONE.update(gone)
    return gone


def too_old(record: registry.Record | None, image: Image) -> bool:
    """Built longer ago than the image's max_age_days: rebuild for OS updates."""
    age = record.age_days() if record else None
    return bool(image.max_age_days and age is not None and age > image.max_age_days)


def _reusable(settings: Settings, graph: Graph, name: str, record: registry.Record | None,
              dig: str) -> bool:
    return bool(record and record.digest == dig and not too_old(record, graph.images[name])
                and aws.ami_exists(settings, record.ami, record.region))


def build_image(settings: Settings, graph: Graph, name: str) -> tuple[Outcome, str]:
    """Bring image ``name`` up to date. Returns the outcome and the digest."""
    start = time.monotonic()
    parent = _parent_record(settings, graph, name)
    dig, inputs = current_digest(settings, graph, name, parent.ami)

    current = registry.read_local(settings.record_path(name))
    if too_old(current, graph.images[name]):
        console.say(f"{current.ami} is older than {graph.images[name].max_age_days} days: "
                    "rebuilding for OS updates", name)
    if _reusable(settings, graph, name, current, dig):
        assert current is not None
        console.say(f"inputs unchanged (digest {dig[:12]}): keeping {current.ami}", name)
        outcome = Outcome(name, "reused", current.ami, time.monotonic() - start)
        return _record(settings, outcome), dig

    reused = _reuse_by_digest(settings, graph, name, dig, start)
    if reused:
        return reused, dig
    with locks.held(settings, graph.region, name, lambda text: console.say(text, name)):
        # Another agent may have built these inputs while we waited for the lock.
        reused = _reuse_by_digest(settings, graph, name, dig, start)
        if reused:
            return reused, dig
        record = _run_packer(settings, graph, name, parent, dig, inputs)
        published = registry.publish(settings, record, provenance.channel(settings)[0],
                                     new_build=True)
    console.say(f"built {record.ami}" + "".join(f", {r}: {a}" for r, a in record.amis.items()
                                                if r != record.region), name)
    if published is not record:
        console.say(f"a build that started later ({published.ami}, commit "
                    f"{str(published.git.get('commit', '?'))[:12]}) is current; left it so", name)
    return _record(settings, Outcome(name, "built", record.ami, time.monotonic() - start)), dig


def _reuse_by_digest(settings: Settings, graph: Graph, name: str, dig: str,
                     start: float) -> Outcome | None:
    """An earlier build of exactly these inputs (another branch, a revert,
    another agent), made current again."""
    earlier = registry.fetch_by_digest(settings, graph.region, name, dig)
    if not _reusable(settings, graph, name, earlier, dig):
        return None
    assert earlier is not None
    registry.publish(settings, earlier, provenance.channel(settings)[0], new_build=False)
    console.say(f"an earlier build has these inputs (digest {dig[:12]}): "
                f"reusing {earlier.ami}", name)
    return _record(settings, Outcome(name, "reused", earlier.ami, time.monotonic() - start,
                                     "by digest"))


def _run_packer(settings: Settings, graph: Graph, name: str, parent: registry.Record,
                dig: str, inputs: dict[str, str]) -> registry.Record:
    image = graph.images[name]
    exe = packer_executable(settings)
    env = aws.subprocess_env(settings)
    url = aws.endpoint(settings)
    with _lock:
        if "v" not in _packer_version:
            _packer_version["v"] = packer.version(exe, env)
    git = provenance.git_info(graph.root)
    started = _now()
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    template = packer.effective_template(graph.root / image.template, image, url, settings.sandbox)
    work = settings.work / f"{name}-{stamp}.json"
    registry.write_atomic(work, (json.dumps(template, indent=2) + "\n").encode())
    variables = {**dict(image.vars), **packer.build_variables(
        name, graph.region, image.playbook, source_ami=parent.ami, parent_image=parent.image,
        digest=dig, git=git, build_time=stamp, packer_version=_packer_version["v"])}
    console.say(f"building on {parent.image} {parent.ami} with {image.template}"
                + (" (sandbox: no provisioning)" if settings.sandbox else ""), name)
    mask = packer.Masker(packer.sensitive_values(template, variables, env))
    for attempt in range(settings.retries + 1):
        log = settings.logs / f"{name}-{stamp}{f'-retry{attempt}' if attempt else ''}.log"
        result = packer.run(packer.command(exe, work, variables), env, graph.root, log,
                            lambda text: console.say(text, name), mask,
                            lambda instance: aws.require_imdsv2(settings, graph.region, instance))
        if result.ok or not result.transient or attempt == settings.retries:
            break
        delay = packer.backoff(attempt, settings.retry_base)
        console.say(f"transient AWS error ({result.reason()}); trying again in {delay:.0f} s "
                    f"({attempt + 2} of {settings.retries + 1}); log: {log}", name)
        if packer.wait_or_interrupted(delay):
            raise AmiError(f"image {name}: interrupted while waiting to retry; nothing recorded")
    if not result.ok:
        raise AmiError(f"image {name}: {result.reason()}; nothing published, the previous "
                       f"AMI stays current; log: {log}")
    missing = [r for r in image.regions if r not in result.amis]
    if missing:
        raise AmiError(f"image {name}: Packer made no AMI in {', '.join(missing)}; "
                       f"nothing published; log: {log}")
    public = aws.harden_amis(settings, result.amis)
    if public:
        raise AmiError(f"image {name}: {image.template} made {', '.join(public)} public "
                       "(ami_groups/ami_users); made private again, nothing published: "
                       "remove the setting from the template")
    return registry.Record(
        image=name, region=graph.region, amis={r: result.amis[r] for r in image.regions},
        digest=dig, parent={"image": parent.image, "ami": parent.ami}, git=git,
        settings=image.settings(settings.sandbox),
        packer_version=_packer_version["v"], build_started=started.isoformat(timespec="seconds"),
        build_finished=_now().isoformat(timespec="seconds"), build_log=log.name, inputs=inputs,
    )


def summary(graph: Graph, settings: Settings) -> str:
    rows = []
    for name in graph.names:
        record = registry.read_local(settings.record_path(name))
        outcome = OUTCOMES.get(name)
        what = outcome.action if outcome else ("up to date" if record else "not built")
        took = f"{outcome.seconds:.1f}s" if outcome and outcome.action == "built" else ""
        rows.append([name, record.ami if record else "-", what, took])
    return console.table(rows, ["image", "ami", "this run", "took"])


def record_digest(path: Path) -> str | None:
    """The digest in a local record, or None (missing or unreadable)."""
    try:
        return registry.read_local(path).digest  # type: ignore[union-attr]
    except (AmiError, AttributeError):
        return None
