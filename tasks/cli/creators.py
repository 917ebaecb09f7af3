"""The doit task creators: declarations only, the work is in ``actions``.
Each docstring is the task's ``doit list`` line.

They are methods of one :class:`Creators`, which ``dodo.py`` makes for the
tree and which holds the run's composition root. Defining tasks reads ``amis.yaml``, the
playbooks and role metadata, and nothing else: no network, no subprocess.
``dodo.py`` installs the Ctrl-C / SIGTERM handlers explicitly
(:meth:`Creators.install_signal_handlers`): only the main thread may, and
doit imports ``dodo.py`` there.
"""

from __future__ import annotations

import atexit
import gc
import sys
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping

from doit.exceptions import InvalidDodoFile
from doit.tools import config_changed

from ..adapters.signals import Interrupts
from ..core.diagnostics import Diagnostics, by_image
from ..inputs.ansible.lint import lint_files
from ..core.errors import AmiError
from ..core.settings import STATE_DIR
from ..core.retention import DEFAULTS as GC_DEFAULTS
from ..ops import cloud_init, diagram
from .compose import App
from . import actions, usage
from .checker import ModeMD5Checker
from .options import default_jobs, parallel_options, rebuild_option, rebuilt, verbose_flag
from .reporter import Reporter
from .usage import Option

Load = Callable[[Path, Interrupts, bool], App]

_IMAGE = Option("image", "image", "the image", short="i")
_REBUILD = Option("rebuild", "rebuild", "images to build again even when up to date, "
                  "comma-separated, or all (what is built on them follows)", "", str,
                  shown_default="none")
# Each task's options, as `doit <task> --help` shows them and doit reads them.
OPTIONS: Mapping[str, tuple[Option, ...]] = MappingProxyType({
    "amis": (
        Option("process", "process", "images to build at once", 0, int, "n",
               shown_default="the tree's leaves, at most 8"),
        Option("parallel_type", "parallel-type", "how images build at once: Packer runs as a "
               "subprocess, so threads", "thread", str, "P", ("thread",)),
        Option("verbose", "verbose", "show Packer's whole output live (as AMI_VERBOSE=1)",
               False, bool, "v"),
        _REBUILD,
    ),
    "plan": (Option("jobs", "jobs", "builds at once, for the expected total", 0, int, "n",
                    shown_default="the tree's leaves, at most 8"), _REBUILD),
    "graph": (Option("format", "format", "mermaid (pastes into a Buildkite annotation) or dot",
                     "mermaid", str, "f", diagram.FORMATS),),
    "inputs": (Option("image", "image", "the image, or all", "all", str, "i"),),
    "explain": (Option("ami", "ami", "the AMI id to explain", "", str, "a"),),
    "gc": (
        Option("apply", "apply", "delete; without it, only say what would go and why the rest "
               "stays", False, bool),
        Option("keep", "keep", "newest AMIs to keep per image and region", GC_DEFAULTS["keep"],
               int),
        Option("days", "days", "keep anything younger than this many days",
               GC_DEFAULTS["days"], float),
        Option("most", "max", "delete at most this many AMIs per run", GC_DEFAULTS["max"], int),
        Option("leftover_hours", "leftover-hours", "Packer instances and key pairs older than "
               "this are leftovers", GC_DEFAULTS["leftover-hours"], float),
    ),
    "verify": (
        Option("ami", "ami", "the AMI to verify", "", str, "a"),
        Option("image", "image", "verify the channel's current AMI of this image instead", "",
               str, "i"),
        Option("key", "key", "public key PEM file", "", str, "k",
               shown_default="AMI_SIGNING_KEY's public key"),
        Option("worktree", "worktree", "check inputs against the working tree, not the "
               "recorded commit", False, bool),
        Option("require_tests", "require-tests", "also require the AMI's signed result of "
               "passing its tests", False, bool),
    ),
    "revoke": (
        Option("ami", "ami", "the AMI to revoke (and everything built on it)", "", str, "a"),
        Option("image", "image", "revoke the channel's current AMI of this image instead", "",
               str, "i"),
        Option("reason", "reason", "why: recorded, and shown by plan", "", str, "r"),
        Option("undo", "undo", "restore the AMI and what was revoked with it", False, bool),
        Option("disable", "disable", "also disable the AMIs in EC2 (DisableImage)", False,
               bool),
    ),
    "test": (Option("image", "image", "the image whose current AMI to test, or all", "all",
                    str, "i"),),
    "promote": (
        Option("image", "image", "image to promote, or all", "", str, "i"),
        Option("source", "from", "channel (or branch) to take the AMI from", "", str, "f"),
        Option("target", "to", "channel to point at it", "main", str, "t"),
    ),
    **{name: () for name in ("pull", "ami", "validate", "cloud_init", "pipeline", "annotate",
                             "sandbox_stop")},
})
EXAMPLES: Mapping[str, str] = MappingProxyType({
    "amis": "doit amis -n 2 -v", "ami": "doit ami:web", "plan": "doit plan",
    "validate": "doit validate:web", "graph": "doit graph --format dot | dot -Tsvg > tree.svg",
    "inputs": "doit inputs -i web", "explain": "doit explain -a ami-0123456789abcdef0",
    "gc": "doit gc --keep 5 --days 14 --apply", "promote": "doit promote -i web -f feature/x -t main",
    "pipeline": "doit pipeline && buildkite-agent pipeline upload .amis/pipeline.yml",
    "pull": "doit pull", "verify": "doit verify -i web", "test": "doit test -i web",
    "revoke": "doit revoke -i base --reason 'CVE-2026-0001 in openssl'", "annotate": "doit annotate", "cloud_init": "doit cloud_init",
    "sandbox_stop": "doit sandbox_stop",
})


def _load(root: Path, interrupts: Interrupts, verbose: bool) -> App:
    return App.load(root, interrupts=interrupts, verbose=verbose)


class Creators:
    """``load`` composes the run (tests hand in one with fakes); ``argv`` is
    the command line (``doit amis -v`` shows Packer's output)."""

    def __init__(self, root: Path, load: Load = _load, argv: list[str] | None = None) -> None:
        self.root = root
        self.interrupts = Interrupts()
        self._load = load
        self._verbose = verbose_flag(argv or [])
        self._rebuild = rebuild_option(argv or [])
        self._app: App | None = None
        self._refusal: AmiError | None = None   # the tree's problems, once found
        words = [a for a in (argv or [])[1:] if not a.startswith("-")]
        # `doit inputs` lists what each walk found, problems and all, and
        # `doit sandbox_stop` stops the emulator whatever amis.yaml says: the
        # build tasks, which need a tree without problems, are then left out.
        self._asked = words[0] if words else ""
        self._asked_task, _, self._asked_subtask = self._asked.partition(":")
        self._tolerant = self._asked_task in ("inputs", "sandbox_stop", "validate")

    def install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM reach the run's Packer builds and waits."""
        self.interrupts.install()

    @staticmethod
    def tune_collector() -> None:
        """A run makes hundreds of thousands of objects that live until it
        ends (botocore's service models, the walk, doit's tasks) and few
        reference cycles. Python's collector would look through them all,
        again and again, and once more at teardown, to free memory the
        process is about to give back whole: 0.25 s of a 100-image no-op,
        for 0.5 MB. It looks less often (mypy's setting), and not at exit,
        when every file is closed and doit's database written."""
        gc.set_threshold(200_000, 30, 30)
        atexit.register(gc.freeze)

    @property
    def app(self) -> App:
        """The run's composition root, loaded on first use. A user's mistake
        stops doit with one line (doit prints InvalidDodoFile without a
        traceback)."""
        if self._app is None:
            try:
                app = self._load(self.root, self.interrupts, self._verbose)
                if self._rebuild:
                    app.lookup.rebuild(rebuilt(self._rebuild, app.graph))
            except AmiError as err:
                raise InvalidDodoFile(str(err)) from None
            self._app = app
        return self._app

    def _inputs(self) -> dict[str, list[str]]:
        """Each image's input files. A reference that cannot be tracked stops
        doit here, before anything runs, naming every problem found."""
        if self._refusal is not None:       # asked by several creators: worked out once
            raise InvalidDodoFile(str(self._refusal))
        try:
            return {name: list(found.files)
                    for name, found in self.app.checkout.inputs().items()}
        except AmiError as err:
            self._refusal = self._with_preflight(err)
            raise InvalidDodoFile(str(self._refusal)) from None

    def _with_preflight(self, err: AmiError) -> AmiError:
        """The inputs' problems, and what the preflight finds without running
        a program (regions, instance types, what this Packer cannot run, by
        the version a run found before), so one run names them all."""
        problems = Diagnostics()
        for problem in err.problems:
            problems.add(problem)
        found, _ = self.app.checkout.found()
        with problems.collect():
            for problem in by_image([(name, p) for name, inputs in found.items() for p in
                                     self.app.prebuild.problems(name, inputs, offline=True)]):
                problems.add(problem)
        return AmiError.of(problems.problems)

    def _builds_left_out(self) -> bool:
        """In a tolerant command, whether the tree has a problem that keeps
        the build tasks from being defined."""
        if not self._tolerant:
            return False
        try:
            self._inputs()
        except InvalidDodoFile:
            return True
        return False

    def _record_file(self, image: str) -> str:
        return f"{STATE_DIR}/records/{image}.json"

    def _command(self, name: str, action: Any) -> dict[str, Any]:
        """A task that runs whenever it is asked for, with its options."""
        if name != self._asked and self._builds_left_out():
            return {"actions": None}
        task: dict[str, Any] = {"actions": [(action, [self.app])], "uptodate": [False],
                                "verbosity": 2}
        if OPTIONS[name]:
            task["params"] = self._params(name)
        return task

    def _params(self, name: str) -> list[dict[str, Any]]:
        params = [o.doit() for o in OPTIONS[name]]
        for param in params:
            if param["name"] in ("jobs", "process") and not param["default"]:
                param["default"] = self.jobs() or 1 if name == "plan" else 0
        return params

    def _docs(self) -> dict[str, str]:
        """Each task's `doit list` line (its creator's docstring)."""
        return {name: (getattr(type(self), f"task_{name}").__doc__ or "").strip()
                for name in OPTIONS}

    def check_command_line(self, argv: list[str]) -> None:
        """`doit <task> --help`, and mistakes on the command line, before doit
        reads it (see ``usage``)."""
        try:
            graph = self.app.graph
            subtasks = {"ami": list(graph.names), "validate": [*graph.images, "lint"]}
        except InvalidDodoFile:
            subtasks = {}               # doit reports why, once it loads the tasks
        usage.stop(argv, OPTIONS, self._docs(), EXAMPLES, subtasks)

    def jobs(self) -> int:
        """Parallel builds by default: the tree's leaves, at most 8."""
        try:
            return default_jobs(self.app.graph)
        except InvalidDodoFile:
            return 0

    def doit_config(self, argv: list[str]) -> dict[str, Any]:
        """``DOIT_CONFIG`` for this tree and command line."""
        self.check_command_line(argv)
        jobs = self.jobs()
        verbose = self._verbose or (self._app is not None and self._app.console.verbose)
        return {
            "default_tasks": ["amis"],
            # sqlite3: safe when two doit processes touch it; dbm cannot be opened twice.
            # Beside .amis/, not in it: sqlite cannot save into a file deleted under it.
            "backend": "sqlite3",
            "dep_file": ".doit-amis.sqlite3",
            "check_file_uptodate": ModeMD5Checker,       # md5, and the executable bit
            # Independent images build at once; `doit -n 1 amis` builds one at a time.
            # Packer is a subprocess: threads are enough and need no pickling.
            "num_process": jobs,
            "par_type": "thread",
            # One image failing stops its children, not its siblings.
            "continue": True,
            "verbosity": 2,
            "reporter": Reporter(sys.stderr, {}, at_end=self.at_end, failed=self.failed,
                                 skipped=self.skipped, verbose=verbose),   # ends with the summary
            "minversion": "0.36.0",
            **parallel_options(argv),   # `doit amis -n 4 -P thread`
        }

    def at_end(self) -> None:
        """When doit is done: the run's summary, if it pulled (built anything)."""
        if self._app is not None:
            actions.summary(self._app)

    def failed(self, message: str) -> None:
        """A task failed with this one line."""
        if self._app is not None:
            self._app.console.error(message)
        else:
            sys.__stderr__.write(f"ERROR: {message}\n")

    def skipped(self, task: str) -> None:
        """``task`` did not run, because a task it needs failed."""
        if self._app is not None and task.startswith("ami:"):
            actions.skipped(self._app, task.split(":", 1)[1])

    def task_pull(self) -> dict[str, Any]:
        """Download every image's current record from S3 (runs before every build)."""
        if self._builds_left_out():
            return {"actions": None}
        return {"actions": [(actions.pull, [self.app])], "uptodate": [False], "verbosity": 2}

    def task_ami(self) -> Iterator[dict[str, Any]]:
        """Build one image if its inputs changed: ami:<name> (see doit list --all)."""
        if self._builds_left_out():
            return
        app = self.app
        source = app.graph.source
        spec = source.spec(app.settings.sandbox)
        up_to_date = (actions.ami_up_to_date, [app])
        yield {
            "name": source.name,
            "doc": f"resolve source image {source.name} "
                   f"({'pinned' if 'ami' in spec else 'newest match'})",
            "actions": [(actions.source, [app])],
            "targets": [self._record_file(source.name)],
            "task_dep": ["pull"],
            # A filter may resolve to a newer upstream image at any time: always look.
            "uptodate": [config_changed(spec) if "ami" in spec else False, up_to_date],
            "verbosity": 2,
        }
        inputs = self._inputs()
        for name, image in app.graph.images.items():
            yield {
                "name": name,
                "doc": f"build image {name} on {image.parent} from {image.template}",
                "actions": [(actions.image, [app, name])],
                # Its tests too: a change to them alone re-tests its AMI (no Packer).
                "file_dep": [*inputs[name], *app.checkout.tests(name),
                             self._record_file(image.parent)],
                "targets": [self._record_file(name)],
                "task_dep": ["pull"],
                "uptodate": [config_changed(app.checkout.digest_settings(name)), up_to_date],
                "verbosity": 2,
            }

    def task_amis(self) -> dict[str, Any]:
        """Build every stale image, parents first, and print a table (default task)."""
        return {
            "actions": None, "task_dep": [] if self._builds_left_out() else ["ami"],
            # Read from the command line for DOIT_CONFIG and the console (options.py);
            # declared so doit accepts them.
            "params": self._params("amis"),
        }

    def task_validate(self) -> Iterator[dict[str, Any]]:
        """Check templates (packer validate), playbooks (--syntax-check) and roles (ansible-lint)."""
        if self._builds_left_out():
            if self._asked_task == "validate":
                yield from self._packer_reads()
            return
        app = self.app
        inputs = self._inputs()
        for name, image in app.graph.images.items():
            yield {
                "name": name,
                "doc": f"packer validate {image.template}"
                       + (f"; ansible-playbook --syntax-check {image.playbook}"
                          if image.playbook else ""),
                "actions": [(actions.validate_image, [app, name])],
                "file_dep": inputs[name],
                "verbosity": 2,
            }
        every_input = sorted({f for files in inputs.values() for f in files})
        lint_config = lint_files(self.root, sorted({r.playbook for i in app.checkout.inputs().values()
                                                    for r in i.ansible}))
        yield {
            "name": "lint",
            "doc": "ansible-lint on the project's playbooks and roles",
            "actions": [(actions.lint, [app])],
            "file_dep": every_input + lint_config,
            "verbosity": 2,
        }

    def _packer_reads(self) -> Iterator[dict[str, Any]]:
        """`doit validate` on a tree with problems: a template this tool could
        not read goes to Packer's own parser, whose word and line win. Any
        other problem stops it as it stops every command."""
        app = self.app
        _, problems = app.checkout.found()
        unread = app.checkout.unreadable()
        asked = self._asked_subtask
        assert self._refusal is not None
        if not unread or (asked and asked not in unread):
            raise InvalidDodoFile(str(self._refusal))
        theirs = {p for name in unread for p in problems[name]}
        others = [p for p in self._refusal.problems if p not in theirs]
        for name in unread:
            yield {
                "name": name,
                "doc": f"packer validate -syntax-only {app.graph.images[name].template}",
                "actions": [(actions.packer_reads, [app, name, others])],
                "uptodate": [False],
                "verbosity": 2,
            }

    def task_cloud_init(self) -> Iterator[dict[str, Any]]:
        """Render each image's cloud-init user-data per environment (.amis/cloud-init/)."""
        if self._builds_left_out():
            return
        app = self.app
        if not (self.root / cloud_init.VARS_FILE).exists():
            return      # this tree keeps no user-data
        try:
            environments = cloud_init.load_environments(self.root)
        except AmiError as err:
            raise InvalidDodoFile(str(err)) from None
        templates = cloud_init.template_files(self.root)
        for environment in sorted(environments):
            for image in cloud_init.templated_images(self.root, app.graph.names):
                target = f"{STATE_DIR}/cloud-init/{environment}/{image}.yaml"
                yield {
                    "name": f"{environment}/{image}",
                    "doc": f"user-data of {image} in {environment}",
                    "actions": [(actions.render_user_data, [app, image, environment, target])],
                    "file_dep": [cloud_init.VARS_FILE, *templates],
                    "targets": [target],
                    "verbosity": 2,
                }

    def task_inputs(self) -> dict[str, Any]:
        """List every input of an image and what brought it in: doit inputs -i web."""
        return self._command("inputs", actions.inputs)

    def task_plan(self) -> dict[str, Any]:
        """Show what each image would do (up to date, reuse, build), why, and how long."""
        return self._command("plan", actions.plan)

    def task_annotate(self) -> dict[str, Any]:
        """Post the last run's table and graph as a Buildkite annotation (or print it)."""
        return self._command("annotate", actions.annotate)

    def task_pipeline(self) -> dict[str, Any]:
        """Publish what needs no build; write a Buildkite step per image to build (.amis/pipeline.yml)."""
        return self._command("pipeline", actions.pipeline)

    def task_graph(self) -> dict[str, Any]:
        """Print the image tree coloured by plan status: Mermaid (default) or --format dot."""
        return self._command("graph", actions.graph)

    def task_explain(self) -> dict[str, Any]:
        """Show where an AMI comes from, back to the source image: doit explain -a ami-..."""
        return self._command("explain", actions.explain)

    def task_gc(self) -> dict[str, Any]:
        """Deregister old unused AMIs and what killed runs left (dry run unless --apply)."""
        return self._command("gc", actions.gc)

    def task_promote(self) -> dict[str, Any]:
        """Point a channel at another channel's AMI: doit promote -i web -f <from> -t main."""
        return self._command("promote", actions.promote)

    def task_verify(self) -> dict[str, Any]:
        """Check an AMI's signed provenance back to the source: doit verify -a ami-... (or -i web)."""
        return self._command("verify", actions.verify)

    def task_test(self) -> dict[str, Any]:
        """Run an image's tests again on its channel's current AMI, moving nothing: doit test -i web."""
        return self._command("test", actions.test)

    def task_revoke(self) -> dict[str, Any]:
        """Revoke an AMI and everything built on it, so they rebuild: doit revoke -i base -r why."""
        return self._command("revoke", actions.revoke)

    def task_sandbox_stop(self) -> dict[str, Any]:
        """Stop the sandbox's background AWS emulator (its AMIs and records go with it)."""
        # Needs only the settings: it works whatever amis.yaml says.
        return {"actions": [(actions.sandbox_stop, [self.root])], "uptodate": [False],
                "verbosity": 2}


def namespace(creators: Creators, argv: list[str]) -> dict[str, Any]:
    """What ``dodo.py`` holds, as a dict for doit's ModuleTaskLoader: every
    task creator and DOIT_CONFIG (tests run doit in process with it)."""
    tasks = {name: getattr(creators, name) for name in dir(creators)
             if name.startswith("task_")}
    return {**tasks, "DOIT_CONFIG": creators.doit_config(argv)}
