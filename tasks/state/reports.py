"""What happened to each image in this run, kept in ``.amis/last-run.json``
for ``doit annotate`` (which runs after a failure too)."""

from __future__ import annotations

import json
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.files import write_atomic
from ..core.outcome import Outcome


@dataclass
class Report:
    image: str
    outcome: Outcome
    ami: str
    seconds: float
    note: str = ""


class Reports:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._reports: dict[str, Report] = {}
        self.started = False                # a build run (pull) began

    def start(self) -> None:
        with self._lock:
            self.started = True
            self._reports.clear()
            write_atomic(self.path, b"{}\n")

    def add(self, report: Report) -> Report:
        with self._lock:
            self._reports[report.image] = report
            body = json.dumps({k: asdict(v) for k, v in self._reports.items()},
                              indent=2, sort_keys=True)
            write_atomic(self.path, (body + "\n").encode(), durable=False)
        return report

    def get(self, image: str) -> Report | None:
        with self._lock:
            return self._reports.get(image)

    @staticmethod
    def load(path: Path) -> dict[str, Report]:
        try:
            data = json.loads(path.read_text())
            return {k: Report(**{**v, "outcome": Outcome(v["outcome"])}) for k, v in data.items()}
        except (OSError, ValueError, TypeError, KeyError):
            return {}
