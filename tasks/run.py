"""One run of doit: its settings, graph, clients and what happened, in one
object with the run's lifetime. ``dodo.py`` makes it (through the task
creators) and every action receives it; nothing else holds state."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from importlib.metadata import version
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

from . import emulator, hcl, provenance
from .console import Console
from .aws import Aws
from .config import Settings, load_settings
from .digest import Hasher
from .errors import AmiError
from .facts import Facts
from .graph import Graph, load_graph
from .inputs import Inputs, image_inputs
from .packer import Packers
from .records import write_atomic
from .refs import Repo
from .registry import Registry

T = TypeVar("T")


@dataclass
class Outcome:
    image: str
    action: str          # "built", "reused", "resolved", "up to date", "failed"
    ami: str
    seconds: float
    note: str = ""


class Outcomes:
    """This run's outcomes, kept in ``.amis/last-run.json`` for ``doit annotate``
    (which runs after a failure too)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._outcomes: dict[str, Outcome] = {}
        self.started = False                # a build run (pull) began

    def start(self) -> None:
        with self._lock:
            self.started = True
            self._outcomes.clear()
            write_atomic(self.path, b"{}\n")

    def add(self, outcome: Outcome) -> Outcome:
        with self._lock:
            self._outcomes[outcome.image] = outcome
            body = json.dumps({k: asdict(v) for k, v in self._outcomes.items()},
                              indent=2, sort_keys=True)
            write_atomic(self.path, (body + "\n").encode(), durable=False)
        return outcome

    def get(self, image: str) -> Outcome | None:
        with self._lock:
            return self._outcomes.get(image)

    @staticmethod
    def load(path: Path) -> dict[str, Outcome]:
        try:
            data = json.loads(path.read_text())
            return {k: Outcome(**v) for k, v in data.items()}
        except (OSError, ValueError, TypeError):
            return {}


class Run:
    def __init__(self, settings: Settings, graph: Graph) -> None:
        self.settings = settings
        self.graph = graph
        self.hasher = Hasher()
        self.packers = Packers(settings.cleanup_timeout)
        self.aws = Aws(settings, self._endpoint)
        self.registry = Registry(settings, self.aws, graph.region)
        self.outcomes = Outcomes(settings.state / "last-run.json")
        self.facts = Facts()
        self.console = Console()
        self._lock = threading.RLock()      # once() values may use other once() values
        self._once: dict[str, Any] = {}

    @classmethod
    def load(cls, root: Path, env: dict[str, str] | None = None) -> "Run":
        """Settings and graph: local files only, no network, no subprocess."""
        return cls(load_settings(root, os.environ if env is None else env), load_graph(root))

    def _endpoint(self) -> str | None:
        """Where AWS calls go: AWS_ENDPOINT_URL, the sandbox's own emulator, or AWS."""
        if self.settings.endpoint or not self.settings.sandbox:
            return self.settings.endpoint
        return emulator.ensure(self.settings.root, self.settings.state)

    def once(self, key: str, make: Callable[[], T]) -> T:
        """A value computed once per run (thread-safe)."""
        with self._lock:
            if key not in self._once:
                self._once[key] = make()
            return self._once[key]

    def say(self, text: str, image: str | None = None) -> None:
        self.console.say(text, image)

    # -- local facts ---------------------------------------------------------

    def inputs(self) -> dict[str, Inputs]:
        """Each image's input files and why, read from local files only."""
        return self.once("inputs", lambda: {
            name: image_inputs(self.graph, image, self._parse_hcl)
            for name, image in self.graph.images.items()})

    def _parse_hcl(self, repo: Repo, rel: str, image: str) -> hcl.Document:
        """Each HCL2 file once per run, and once per content on this machine:
        parsed forms are kept in .amis/hcl/, so a no-op run needs no parser."""
        def parsed() -> hcl.Document:
            text, shown = hcl.source(repo, rel, image)
            if rel.endswith(".json"):
                return hcl.parse_text(rel, text, shown)
            # python-hcl2's parsed form is kept per its version
            key = hashlib.sha256(f"{version('python-hcl2')}\0{text}".encode()).hexdigest()
            kept = self.settings.state / "hcl" / f"{key}.json"
            try:
                return hcl.Document(rel, "hcl", json.loads(kept.read_text(encoding="utf-8")))
            except (OSError, ValueError):
                pass
            document = hcl.parse_text(rel, text, shown)
            write_atomic(kept, json.dumps(document.data).encode(), durable=False)
            return document
        return self.once(f"hcl:{rel}", parsed)

    def manifest(self, image: str) -> dict[str, str]:
        """Its inputs' hashes, taken once per run: what the decision and the
        stage (which checks each staged file against it) agree on."""
        return self.once(f"manifest:{image}", lambda: self.hasher.manifest(
            self.graph.root, list(self.inputs()[image].files)))

    def digest_settings(self, image: str) -> dict[str, Any]:
        """The build settings that are part of the image's digest."""
        return {**self.graph.images[image].settings(self.settings.sandbox),
                "kind": self.inputs()[image].kind}

    def git(self) -> dict[str, object]:
        return self.once("git", lambda: provenance.git_info(
            self.graph.root, sorted({f for i in self.inputs().values() for f in i.files})))

    def channel(self) -> tuple[str, str]:
        """The channel this run publishes to, and a note when it is not the obvious one."""
        return self.once("channel", lambda: provenance.channel(self.settings, self.git()))

    def record_path(self, image: str) -> Path:
        return self.settings.record_path(image)

    def require_graph_image(self, name: str) -> None:
        if name not in self.graph.images:
            raise AmiError(f"no image {name!r} in amis.yaml (one of {', '.join(self.graph.images)})")
