"""What happened to each image in this run, kept in ``.amis/last-run.json``
for ``doit annotate`` (which runs after a failure too)."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.files import write_atomic


@dataclass
class Outcome:
    image: str
    action: str          # "built", "reused", "resolved", "up to date", "failed"
    ami: str
    seconds: float
    note: str = ""


class Outcomes:
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
