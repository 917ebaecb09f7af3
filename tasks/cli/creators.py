"""The doit task creators: declarations only, the work is in ``actions``.
Each docstring is the task's ``doit list`` line.

They are methods of one :class:`Creators`, which ``dodo.py`` makes for the
tree and which holds the run. Defining tasks reads ``amis.yaml``, the
playbooks and role metadata, and nothing else: no network, no subprocess.
``dodo.py`` installs the Ctrl-C / SIGTERM handlers explicitly
(:meth:`Creators.install_signal_handlers`): only the main thread may, and
doit imports ``dodo.py`` there.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from doit.exceptions import InvalidDodoFile
from doit.tools import config_changed

from ..adapters.signals import Interrupts
from ..core.errors import AmiError
from ..core.settings import STATE_DIR
from ..ops import cloud_init, diagram, gc, validate
from ..ops.run import Run
from . import actions
from .checker import ModeMD5Checker
from .options import default_jobs, parallel_options
from .reporter import Reporter

Load = Callable[[Path, Interrupts], Run]


def _load(root: Path, interrupts: Interrupts) -> Run:
    return Run.load(root, interrupts=interrupts)


class Creators:
    """``load`` composes the run (tests hand in one with fakes)."""

    def __init__(self, root: Path, load: Load = _load) -> None:
        self.root = root
        self.interrupts = Interrupts()
        self._load = load
        self._run: Run | None = None

    def install_signal_handlers(self) -> None:
        """Ctrl-C and SIGTERM reach the run's Packer builds and waits."""
        self.interrupts.install()

    @property
    def run(self) -> Run:
        """The run, loaded on first use. A user's mistake stops doit with one
        line (doit prints InvalidDodoFile without a traceback)."""
        if self._run is None:
            try:
                self._run = self._load(self.root, self.interrupts)
            except AmiError as err:
                raise InvalidDodoFile(str(err)) from None
        return self._run

    def _inputs(self) -> dict[str, list[str]]:
        """Each image's input files. A reference that cannot be tracked stops
        doit here, before anything runs."""
        try:
            return {name: list(found.files)
                    for name, found in self.run.checkout.inputs().items()}
        except AmiError as err:
            raise InvalidDodoFile(str(err)) from None

    def _record_file(self, image: str) -> str:
        return f"{STATE_DIR}/records/{image}.json"

    def _command(self, action: Any, *params: dict[str, Any]) -> dict[str, Any]:
        """A task that runs whenever it is asked for, with these options."""
        task: dict[str, Any] = {"actions": [(action, [self.run])], "uptodate": [False],
                                "verbosity": 2}
        if params:
            task["params"] = list(params)
        return task

    def jobs(self) -> int:
        """Parallel builds by default: the tree's leaves, at most 8."""
        try:
            return default_jobs(self.run.graph)
        except InvalidDodoFile:
            return 0

    def doit_config(self, argv: list[str]) -> dict[str, Any]:
        """``DOIT_CONFIG`` for this tree and command line."""
        return {
            "default_tasks": ["amis"],
            # sqlite3: safe when two doit processes touch it; dbm cannot be opened twice.
            # Beside .amis/, not in it: sqlite cannot save into a file deleted under it.
            "backend": "sqlite3",
            "dep_file": ".doit-amis.sqlite3",
            "check_file_uptodate": ModeMD5Checker,       # md5, and the executable bit
            # Independent images build at once; `doit -n 1 amis` builds one at a time.
            # Packer is a subprocess: threads are enough and need no pickling.
            "num_process": self.jobs(),
            "par_type": "thread",
            # One image failing stops its children, not its siblings.
            "continue": True,
            "verbosity": 2,
            "reporter": Reporter(sys.stderr, {}, at_end=self.at_end),   # ends with the summary
            "minversion": "0.36.0",
            **parallel_options(argv),   # `doit amis -n 4 -P thread`
        }

    def at_end(self) -> None:
        """When doit is done: the run's summary, if it pulled (built anything)."""
        if self._run is not None:
            actions.summary(self._run)

    def task_pull(self) -> dict[str, Any]:
        """Download every image's current record from S3 (runs before every build)."""
        return {"actions": [(actions.pull, [self.run])], "uptodate": [False], "verbosity": 2}

    def task_ami(self) -> Iterator[dict[str, Any]]:
        """Build one image if its inputs changed: ami:<name> (see doit list --all)."""
        run = self.run
        source = run.graph.source
        spec = source.spec(run.settings.sandbox)
        up_to_date = (actions.ami_up_to_date, [run])
        yield {
            "name": source.name,
            "doc": f"resolve source image {source.name} "
                   f"({'pinned' if 'ami' in spec else 'newest match'})",
            "actions": [(actions.source, [run])],
            "targets": [self._record_file(source.name)],
            "task_dep": ["pull"],
            # A filter may resolve to a newer upstream image at any time: always look.
            "uptodate": [config_changed(spec) if "ami" in spec else False, up_to_date],
            "verbosity": 2,
        }
        inputs = self._inputs()
        for name, image in run.graph.images.items():
            yield {
                "name": name,
                "doc": f"build image {name} on {image.parent} from {image.template}",
                "actions": [(actions.image, [run, name])],
                "file_dep": [*inputs[name], self._record_file(image.parent)],
                "targets": [self._record_file(name)],
                "task_dep": ["pull"],
                "uptodate": [config_changed(run.checkout.digest_settings(name)), up_to_date],
                "verbosity": 2,
            }

    def task_amis(self) -> dict[str, Any]:
        """Build every stale image, parents first, and print a table (default task)."""
        return {
            "actions": None, "task_dep": ["ami"],
            # Read by options.parallel_options() for DOIT_CONFIG; declared so doit accepts them.
            "params": [
                {"name": "process", "short": "n", "long": "process", "type": int, "default": 0,
                 "help": "images to build at once (default: the tree's leaves, at most 8)"},
                {"name": "par_type", "short": "P", "long": "parallel-type", "type": str,
                 "default": "thread", "choices": (("thread", "Packer runs as a subprocess"),),
                 "help": "how: only 'thread' (records are shared in-process)"},
            ],
        }

    def task_validate(self) -> Iterator[dict[str, Any]]:
        """Check templates (packer validate), playbooks (--syntax-check) and roles (ansible-lint)."""
        run = self.run
        inputs = self._inputs()
        for name, image in run.graph.images.items():
            yield {
                "name": name,
                "doc": f"packer validate {image.template}"
                       + (f"; ansible-playbook --syntax-check {image.playbook}"
                          if image.playbook else ""),
                "actions": [(actions.validate_image, [run, name])],
                "file_dep": inputs[name],
                "verbosity": 2,
            }
        every_input = sorted({f for files in inputs.values() for f in files})
        lint_config = [validate.LINT_CONFIG] if (self.root / validate.LINT_CONFIG).is_file() else []
        yield {
            "name": "lint",
            "doc": "ansible-lint on the project's playbooks and roles",
            "actions": [(actions.lint, [run])],
            "file_dep": every_input + lint_config,
            "verbosity": 2,
        }

    def task_cloud_init(self) -> Iterator[dict[str, Any]]:
        """Render each image's cloud-init user-data per environment (.amis/cloud-init/)."""
        run = self.run
        if not (self.root / cloud_init.VARS_FILE).exists():
            return      # this tree keeps no user-data
        try:
            environments = cloud_init.load_environments(self.root)
        except AmiError as err:
            raise InvalidDodoFile(str(err)) from None
        templates = cloud_init.template_files(self.root)
        for environment in sorted(environments):
            for image in cloud_init.templated_images(self.root, run.graph.names):
                target = f"{STATE_DIR}/cloud-init/{environment}/{image}.yaml"
                yield {
                    "name": f"{environment}/{image}",
                    "doc": f"user-data of {image} in {environment}",
                    "actions": [(actions.render_user_data, [run, image, environment, target])],
                    "file_dep": [cloud_init.VARS_FILE, *templates],
                    "targets": [target],
                    "verbosity": 2,
                }

    def task_inputs(self) -> dict[str, Any]:
        """List every input of an image and what brought it in: doit inputs -i web."""
        return self._command(actions.inputs, {"name": "image", "short": "i", "long": "image",
                                              "default": "all", "help": "the image (default: all)"})

    def task_plan(self) -> dict[str, Any]:
        """Show each image as up to date, would reuse, would rebuild or missing, why, and how long."""
        return self._command(actions.plan, {
            "name": "jobs", "short": "n", "long": "jobs", "type": int, "default": self.jobs() or 1,
            "help": "builds at once, for the expected total (default: the tree's leaves)"})

    def task_annotate(self) -> dict[str, Any]:
        """Post the last run's table and graph as a Buildkite annotation (or print it)."""
        return self._command(actions.annotate)

    def task_pipeline(self) -> dict[str, Any]:
        """Publish what needs no build; write a Buildkite step per image to build (.amis/pipeline.yml)."""
        return self._command(actions.pipeline)

    def task_graph(self) -> dict[str, Any]:
        """Print the image tree coloured by plan status: Mermaid (default) or --format dot."""
        return self._command(actions.graph, {
            "name": "fmt", "short": "f", "long": "format", "default": "mermaid",
            "choices": tuple((f, "") for f in diagram.FORMATS),
            "help": "mermaid (pastes into a Buildkite annotation) or dot"})

    def task_explain(self) -> dict[str, Any]:
        """Show where an AMI comes from, back to the source image: doit explain -a ami-..."""
        return self._command(actions.explain, {"name": "ami", "short": "a", "long": "ami",
                                               "default": "", "help": "the AMI id to explain"})

    def task_gc(self) -> dict[str, Any]:
        """Deregister old AMIs of this project and Packer leftovers (dry run unless --apply)."""
        return self._command(
            actions.gc,
            {"name": "apply", "long": "apply", "type": bool, "default": False,
             "help": "delete; without it, only say what would go and why the rest stays"},
            {"name": "keep", "long": "keep", "type": int, "default": gc.DEFAULTS["keep"],
             "help": "newest AMIs to keep per image and region"},
            {"name": "days", "long": "days", "type": float, "default": gc.DEFAULTS["days"],
             "help": "keep anything younger than this many days"},
            {"name": "most", "long": "max", "type": int, "default": gc.DEFAULTS["max"],
             "help": "delete at most this many AMIs per run"},
            {"name": "leftover_hours", "long": "leftover-hours", "type": float,
             "default": gc.DEFAULTS["leftover-hours"],
             "help": "Packer instances and key pairs older than this are leftovers"})

    def task_promote(self) -> dict[str, Any]:
        """Point a channel at another channel's AMI: doit promote -i web -f <from> -t main."""
        return self._command(
            actions.promote,
            {"name": "image", "short": "i", "long": "image", "default": "",
             "help": "image to promote, or all"},
            {"name": "source", "short": "f", "long": "from", "default": "",
             "help": "channel to take the AMI from"},
            {"name": "target", "short": "t", "long": "to", "default": "main",
             "help": "channel to point at it (default main)"})

    def task_sandbox_stop(self) -> dict[str, Any]:
        """Stop the sandbox's background AWS emulator (its AMIs and records go with it)."""
        return self._command(actions.sandbox_stop)


def namespace(creators: Creators, argv: list[str]) -> dict[str, Any]:
    """What ``dodo.py`` holds, as a dict for doit's ModuleTaskLoader: every
    task creator and DOIT_CONFIG (tests run doit in process with it)."""
    tasks = {name: getattr(creators, name) for name in dir(creators)
             if name.startswith("task_")}
    return {**tasks, "DOIT_CONFIG": creators.doit_config(argv)}
