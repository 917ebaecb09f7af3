"""The doit task creators. Each docstring is the task's ``doit list`` line.

Defining tasks reads ``amis.yaml``, the playbooks and role metadata, and
nothing else: no network, no subprocess. The work happens in actions.
"""

from __future__ import annotations

import functools
import re
import time
from pathlib import Path
from typing import Any, Callable

from doit.exceptions import InvalidDodoFile, TaskFailed
from doit.tools import config_changed

from . import (aws, build, buildkite, cloud_init, console, diagram, emulator, explain, gc,
               packer, plan, provenance, registry, validate)
from .config import ROOT, STATE_DIR, Settings, load_settings
from .errors import AmiError
from .graph import Graph, load_graph
from .inputs import image_inputs

# doit opens its dependency database here before any task runs.
(ROOT / STATE_DIR).mkdir(exist_ok=True)
# Ctrl-C / SIGTERM: let Packer clean up instead of dying mid-build.
packer.install_signal_handlers()


@functools.lru_cache(maxsize=None)
def _loaded() -> tuple[Settings, Graph]:
    """Settings and graph, once per run. A user's mistake stops doit with
    one line (doit prints InvalidDodoFile without a traceback)."""
    try:
        return load_settings(), load_graph(ROOT)
    except AmiError as err:
        raise InvalidDodoFile(str(err)) from None


@functools.lru_cache(maxsize=None)
def _inputs() -> dict[str, list[str]]:
    """Each image's input files, read from its playbook and roles."""
    _, graph = _loaded()
    try:
        return {name: image_inputs(graph, image) for name, image in graph.images.items()}
    except AmiError as err:
        raise InvalidDodoFile(str(err)) from None


def default_jobs(most: int = 8) -> int:
    """Parallel builds by default, as many as the tree has leaves (Packer
    mostly waits on AWS, so cores do not limit it). 0 when the graph does
    not load: the task creators then report why."""
    try:
        _, graph = _loaded()
    except InvalidDodoFile:
        return 0
    return min(graph.width, most) if graph.width > 1 else 0


def parallel_options(argv: list[str]) -> dict[str, Any]:
    """Honour `doit amis -n 4 -P thread`. doit reads its own options only
    before the task names; options after `amis` are `amis`'s params (see
    task_amis), and are read here from the command line for DOIT_CONFIG.
    Options before the task name still win, as doit gives them precedence."""
    args = argv[1:]
    if "amis" not in args:
        return {}
    tail = args[args.index("amis") + 1:]
    found: dict[str, Any] = {}
    for i, arg in enumerate(tail):
        value = tail[i + 1] if i + 1 < len(tail) else ""
        if arg in ("-n", "--process") and value.isdigit():
            found["num_process"] = int(value)
        elif arg.startswith("--process=") and arg[10:].isdigit():
            found["num_process"] = int(arg[10:])
        elif arg.startswith("-n") and arg[2:].isdigit():
            found["num_process"] = int(arg[2:])
    return found


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


def _record_file(settings: Settings, image: str) -> str:
    return settings.record_path(image).relative_to(settings.root).as_posix()


def _record_matches_last_run(task: Any, values: dict[str, Any]) -> bool:
    """Up to date only while the local record is the one this task last
    produced (a pull that brings another agent's record makes it run again)
    and its AMI still exists (pull checks)."""
    name = task.name.split(":", 1)[1]
    _, graph = _loaded()
    image = graph.images.get(name)
    if image and image.max_age_days:
        try:
            if build.too_old(registry.read_local(Path(task.targets[0])), image):
                return False
        except AmiError:
            return False
    return values.get("digest") is not None and name not in build.GONE and \
        values.get("digest") == build.record_digest(Path(task.targets[0]))


@_action
def _pull() -> None:
    settings, graph = _loaded()
    build.start_run(settings)
    channel, note = provenance.channel(settings)
    if note:
        console.say(note)
    status = registry.pull(settings, graph.region, channel, graph.names)
    counts = {s: sum(1 for v in status.values() if v == s) for s in sorted(set(status.values()))}
    console.say("pulled channel {} from s3://{}/{}: {}".format(
        channel, settings.bucket, settings.prefix,
        ", ".join(f"{n} {s}" for s, n in counts.items())))
    build.find_gone_amis(settings, graph)


@_action
def _source() -> dict[str, str]:
    settings, graph = _loaded()
    outcome = build.resolve_source(settings, graph)
    return {"digest": build.record_digest(settings.record_path(outcome.image)) or ""}


@_action
def _image(name: str) -> dict[str, str]:
    settings, graph = _loaded()
    started = time.monotonic()
    try:
        _, dig = build.build_image(settings, graph, name)
    except AmiError as err:
        build.record_failure(settings, name, err, time.monotonic() - started)
        raise
    return {"digest": dig}


@_action
def _summary() -> None:
    settings, graph = _loaded()
    console.say(build.summary(graph, settings))
    if buildkite.under_buildkite():
        _annotate()


@_action
def _annotate() -> None:
    settings, graph = _loaded()
    rows = plan.make_plan(settings, graph, online=False)
    markdown, style = buildkite.annotation(graph, build.load_run(settings), rows)
    if not buildkite.annotate(markdown, style):
        console.say(markdown)


@_action
def _pipeline() -> None:
    settings, graph = _loaded()
    rows, offline = _planned(settings, graph)
    if offline:
        raise AmiError(f"cannot plan the pipeline offline: {offline}")
    target = settings.state / "pipeline.yml"
    registry.write_atomic(target, buildkite.pipeline(graph, rows).encode())
    stale = sum(1 for r in rows if r.status in plan.BUILDS and r.image in graph.images)
    console.say(f"wrote {target.relative_to(settings.root)}: {stale} image step(s); "
                f"upload it with: buildkite-agent pipeline upload {target.relative_to(settings.root)}")


@_action
def _plan(jobs: int) -> None:
    settings, graph = _loaded()
    channel, note = provenance.channel(settings)
    rows, offline = _planned(settings, graph)
    console.say(f"channel {channel}" + (f" ({note})" if note else ""))
    console.say(plan.render(rows, graph, jobs or 1, offline))


@_action
def _validate_image(name: str) -> None:
    settings, graph = _loaded()
    validate.packer_template(settings, graph, name)
    validate.playbook_syntax(graph, name)
    console.say("packer validate and ansible-playbook --syntax-check passed", name)


@_action
def _lint() -> None:
    _, graph = _loaded()
    validate.lint(graph.root, sorted({i.playbook for i in graph.images.values()}))
    console.say("ansible-lint passed")


@_action
def _render_user_data(image: str, environment: str, target: str) -> None:
    settings, _ = _loaded()
    variables = cloud_init.load_environments(settings.root)[environment]
    text = cloud_init.render(settings.root, image, environment, variables)
    cloud_init.check(text, f"{cloud_init.TEMPLATES}/{image}.yaml.j2 ({environment})")
    path = settings.root / target
    registry.write_atomic(path, text.encode())
    cloud_init.schema_check(path)


def _planned(settings: Settings, graph: Graph) -> tuple[list[plan.Row], str | None]:
    channel, _ = provenance.channel(settings)
    offline = plan.pull_or_offline(settings, graph, channel)
    return plan.make_plan(settings, graph, online=offline is None), offline


@_action
def _graph(fmt: str) -> None:
    settings, graph = _loaded()
    rows, offline = _planned(settings, graph)
    console.say(diagram.render(fmt, graph, rows))
    if offline:
        console.say(f"%% offline ({offline}): statuses from local records"
                    if fmt == "mermaid" else f"// offline ({offline})")


@_action
def _explain(ami: str) -> None:
    settings, graph = _loaded()
    aws.check_bucket(settings, graph.region)
    console.say(explain.render(explain.ancestry(settings, graph.region, ami), ami))


@_action
def _gc(apply: bool, keep: int, days: float, most: int, leftover_hours: float) -> None:
    settings, graph = _loaded()
    if keep < 1 or days < 0 or most < 0 or leftover_hours < 0:
        raise AmiError("gc: --keep must be at least 1; --days, --max and --leftover-hours "
                       "must not be negative")
    aws.check_bucket(settings, graph.region)
    candidates = gc.plan_gc(settings, graph, keep, days)
    doomed = gc.delete(settings, candidates, most) if apply else \
        sorted((c for c in candidates if not c.keep), key=lambda c: c.created)[:most]
    gone = {c.ami for c in doomed}
    rows = [[c.image, c.region, c.ami, c.created.strftime("%Y-%m-%d %H:%M"),
             ("deleted" if apply else "would delete") if c.ami in gone
             else ("keep" if c.keep else "later (over --max)"),
             "; ".join(c.keep) or f"older than {days:g} days, not among the newest {keep}"]
            for c in candidates]
    console.say(console.table(rows, ["image", "region", "ami", "created", "action", "why"])
                if rows else "no AMIs built by this project")
    left = gc.leftovers(settings, graph, leftover_hours, apply)
    for item in left:
        console.say(f"{'removed' if apply else 'would remove'} Packer leftover: {item}")
    if not apply:
        console.say(f"dry run: {len(doomed)} AMI(s) and {len(left)} leftover(s) would go; "
                    "run `doit gc --apply` to delete them")


@_action
def _promote(image: str, source: str, target: str) -> None:
    settings, graph = _loaded()
    for what, name in (("--from", source), ("--to", target)):
        if not name or not re.match(r"^[a-z0-9][a-z0-9_-]{0,62}$", name):
            raise AmiError(f"promote {what}={name!r}: give a channel name ([a-z0-9_-])")
    images = graph.names if image == "all" else [image]
    if image != "all" and image not in graph.names:
        raise AmiError(f"promote --image={image!r}: no such image in amis.yaml "
                       f"(one of {', '.join(graph.names)}, or all)")
    who = provenance.actor(settings.root)
    active = provenance.channel(settings)[0]
    for name in images:
        record, replaced = registry.promote(settings, graph.region, name, source, target, who,
                                            mirror=target == active)
        console.say(f"channel {target}: {replaced.ami if replaced else 'nothing'} -> "
                    f"{record.ami} (from {source}, by {who})", name)


@_action
def _sandbox_stop() -> None:
    settings, _ = _loaded()
    console.say(emulator.stop(settings.state))


def task_pull() -> dict[str, Any]:
    """Download every image's current record from S3 (runs before every build)."""
    return {"actions": [_pull], "uptodate": [False], "verbosity": 2}


def task_ami() -> Any:
    """Build one image if its inputs changed: ami:<name> (see doit list --all)."""
    settings, graph = _loaded()
    source = graph.source
    spec = source.spec(settings.sandbox)
    yield {
        "name": source.name,
        "doc": f"resolve source image {source.name} ({'pinned' if 'ami' in spec else 'newest match'})",
        "actions": [_source],
        "targets": [_record_file(settings, source.name)],
        "task_dep": ["pull"],
        # A filter may resolve to a newer upstream image at any time: always look.
        "uptodate": [config_changed(spec) if "ami" in spec else False, _record_matches_last_run],
        "verbosity": 2,
    }
    for name, image in graph.images.items():
        yield {
            "name": name,
            "doc": f"build image {name} on {image.parent} from {image.template}",
            "actions": [(_image, [name])],
            "file_dep": [*_inputs()[name], _record_file(settings, image.parent)],
            "targets": [_record_file(settings, name)],
            "task_dep": [*(["validate"] if settings.validate else []), "pull"],
            "uptodate": [config_changed(image.settings(settings.sandbox)),
                         _record_matches_last_run],
            "verbosity": 2,
        }


def task_amis() -> dict[str, Any]:
    """Build every stale image, parents first, and print a table (default task)."""
    return {
        "actions": [_summary], "task_dep": ["ami"], "uptodate": [False], "verbosity": 2,
        # Read by parallel_options() for DOIT_CONFIG; declared so doit accepts them here.
        "params": [
            {"name": "process", "short": "n", "long": "process", "type": int, "default": 0,
             "help": "images to build at once (default: the tree's leaves, at most 8)"},
            {"name": "par_type", "short": "P", "long": "parallel-type", "type": str,
             "default": "thread", "choices": (("thread", "Packer runs as a subprocess"),),
             "help": "how: only 'thread' (records are shared in-process)"},
        ],
    }


def task_validate() -> Any:
    """Check templates (packer validate), playbooks (--syntax-check) and roles (ansible-lint)."""
    settings, graph = _loaded()
    playbooks = sorted({i.playbook for i in graph.images.values()})
    for name, image in graph.images.items():
        yield {
            "name": name,
            "doc": f"packer validate {image.template}; ansible-playbook --syntax-check {image.playbook}",
            "actions": [(_validate_image, [name])],
            "file_dep": _inputs()[name],
            "verbosity": 2,
        }
    ansible_files = sorted({f for files in _inputs().values() for f in files
                            if f.startswith("ansible/")} | set(playbooks))
    lint_config = [validate.LINT_CONFIG] if (settings.root / validate.LINT_CONFIG).is_file() else []
    yield {
        "name": "lint",
        "doc": "ansible-lint on every playbook and role",
        "actions": [_lint],
        "file_dep": ansible_files + lint_config,
        "verbosity": 2,
    }


def task_cloud_init() -> Any:
    """Render each image's cloud-init user-data per environment (.amis/cloud-init/)."""
    settings, graph = _loaded()
    if not (settings.root / cloud_init.VARS_FILE).exists():
        return      # this tree keeps no user-data
    try:
        environments = cloud_init.load_environments(settings.root)
    except AmiError as err:
        raise InvalidDodoFile(str(err)) from None
    templates = cloud_init.template_files(settings.root)
    for environment in sorted(environments):
        for image in cloud_init.templated_images(settings.root, graph.names):
            target = f"{STATE_DIR}/cloud-init/{environment}/{image}.yaml"
            yield {
                "name": f"{environment}/{image}",
                "doc": f"user-data of {image} in {environment}",
                "actions": [(_render_user_data, [image, environment, target])],
                "file_dep": [cloud_init.VARS_FILE, *templates],
                "targets": [target],
                "verbosity": 2,
            }


def task_plan() -> dict[str, Any]:
    """Show each image as up to date, would rebuild or missing, why, and how long it takes."""
    return {
        "actions": [_plan], "uptodate": [False], "verbosity": 2,
        "params": [{"name": "jobs", "short": "n", "long": "jobs", "type": int,
                    "default": default_jobs() or 1,
                    "help": "builds at once, for the expected total (default: the tree's leaves)"}],
    }


def task_annotate() -> dict[str, Any]:
    """Post the last run's table and graph as a Buildkite annotation (or print it)."""
    return {"actions": [_annotate], "uptodate": [False], "verbosity": 2}


def task_pipeline() -> dict[str, Any]:
    """Write a Buildkite dynamic pipeline, one step per stale image (.amis/pipeline.yml)."""
    return {"actions": [_pipeline], "uptodate": [False], "verbosity": 2}


def task_graph() -> dict[str, Any]:
    """Print the image tree coloured by plan status: Mermaid (default) or --format dot."""
    return {"actions": [_graph], "uptodate": [False], "verbosity": 2,
            "params": [{"name": "fmt", "short": "f", "long": "format", "default": "mermaid",
                        "choices": tuple((f, "") for f in diagram.FORMATS),
                        "help": "mermaid (pastes into a Buildkite annotation) or dot"}]}


def task_explain() -> dict[str, Any]:
    """Show where an AMI comes from, back to the source image: doit explain -a ami-..."""
    return {"actions": [_explain], "uptodate": [False], "verbosity": 2,
            "params": [{"name": "ami", "short": "a", "long": "ami", "default": "",
                        "help": "the AMI id to explain"}]}


def task_gc() -> dict[str, Any]:
    """Deregister old AMIs of this project and Packer leftovers (dry run unless --apply)."""
    return {
        "actions": [_gc], "uptodate": [False], "verbosity": 2,
        "params": [
            {"name": "apply", "long": "apply", "type": bool, "default": False,
             "help": "delete; without it, only say what would go and why the rest stays"},
            {"name": "keep", "long": "keep", "type": int, "default": 3,
             "help": "newest AMIs to keep per image and region"},
            {"name": "days", "long": "days", "type": float, "default": 14,
             "help": "keep anything younger than this many days"},
            {"name": "most", "long": "max", "type": int, "default": 20,
             "help": "delete at most this many AMIs per run"},
            {"name": "leftover_hours", "long": "leftover-hours", "type": float, "default": 6,
             "help": "Packer instances and key pairs older than this are leftovers"},
        ],
    }


def task_promote() -> dict[str, Any]:
    """Point a channel at another channel's AMI: doit promote -i web -f <from> -t main."""
    return {
        "actions": [_promote],
        "params": [
            {"name": "image", "short": "i", "long": "image", "default": "",
             "help": "image to promote, or all"},
            {"name": "source", "short": "f", "long": "from", "default": "",
             "help": "channel to take the AMI from"},
            {"name": "target", "short": "t", "long": "to", "default": "main",
             "help": "channel to point at it (default main)"},
        ],
        "uptodate": [False], "verbosity": 2,
    }


def task_sandbox_stop() -> dict[str, Any]:
    """Stop the sandbox's background AWS emulator (its AMIs and records go with it)."""
    return {"actions": [_sandbox_stop], "uptodate": [False], "verbosity": 2}
