"""The repository as this run found it: each image's inputs and their
hashes, the settings that are part of its digest, where the commit comes
from and the channel it publishes to. Read from local files (and git) once
per run, when first asked; no network."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from ..adapters.git import Git
from ..core import channels
from ..core.digest import Hasher
from ..core.diagnostics import Diagnostics
from ..core.errors import AmiError
from ..core.graph import Graph
from ..core.once import Memo, Once
from ..core.settings import Settings
from ..inputs.hcl.parse import ParseCache, Unreadable
from ..inputs.image import Inputs, found_inputs
from ..inputs.tests import test_files


def value_hash(value: str | None) -> str:
    """What a record keeps of a secret or an environment variable's value: its hash."""
    return "unset" if value is None else hashlib.sha256(value.encode()).hexdigest()


MACHINE_SETTINGS = ("env", "host")     # digest settings the building machine supplies


class Checkout:
    def __init__(self, settings: Settings, graph: Graph, hasher: Hasher, git: Git) -> None:
        self.settings = settings
        self.graph = graph
        self.hasher = hasher
        self.repo = git
        self._parse = ParseCache(settings.state / "hcl")
        self._found = Once(self._walk)
        self._manifests: Memo[str, dict[str, str]] = Memo(lambda image: hasher.manifest(
            graph.root, list(self.inputs()[image].files)))
        self._tests: Memo[str, dict[str, str]] = Memo(lambda image: hasher.manifest(
            graph.root, test_files(graph, graph.images[image])))
        self._git = Once(lambda: git.info(
            sorted({f for i in self.inputs().values() for f in i.files}), settings.buildkite))
        self._channel = Once(lambda: channels.choose(settings, self.git()))

    def _walk(self) -> tuple[dict[str, Inputs], dict[str, tuple[str, ...]], list[str]]:
        """What each image's walk found, each image's problems, and the
        images whose template this tool's HCL2 parser cannot read."""
        found: dict[str, Inputs] = {}
        problems: dict[str, tuple[str, ...]] = {}
        unreadable: list[str] = []
        for name, image in self.graph.images.items():
            try:
                found[name] = found_inputs(self.graph, image, self._parse)
            except Unreadable as err:           # its template: Packer's parser may say more
                problems[name] = err.problems
                unreadable.append(name)
            except AmiError as err:             # no template to walk
                problems[name] = err.problems
            else:
                problems[name] = found[name].problems
        return found, problems, unreadable

    def unreadable(self) -> list[str]:
        """The images whose template this tool's HCL2 parser cannot read
        (``doit validate`` asks Packer's parser about them)."""
        return self._found()[2]

    def inputs(self) -> dict[str, Inputs]:
        """Each image's input files and why, read from local files only. An
        AmiError names every problem of every image, if there are any."""
        found, problems, _ = self._found()
        every = Diagnostics()
        for image_problems in problems.values():
            for problem in image_problems:
                every.add(problem)
        every.check()
        return found

    def found(self) -> tuple[dict[str, Inputs], dict[str, tuple[str, ...]]]:
        """What each image's walk found, and each image's problems (``doit
        inputs``); an image whose template cannot be read has problems only."""
        found, problems, _ = self._found()
        return found, problems

    def manifest(self, image: str) -> dict[str, str]:
        """Its inputs' hashes, taken once per run: what the decision and the
        stage (which checks each staged file against it) agree on."""
        return self._manifests(image)

    def tests(self, image: str) -> dict[str, str]:
        """Its acceptance test files' hashes ({}: it has no tests): apart
        from its inputs, so a change to them alone re-tests its AMI."""
        return self._tests(image)

    def digest_settings(self, image: str) -> dict[str, Any]:
        """The build settings that are part of the image's digest."""
        spec = self.graph.images[image]
        env = {name: value_hash(self.settings.env.get(name)) for name in spec.env_inputs}
        for path in spec.host_inputs:
            if not Path(path).is_file():
                raise AmiError(f"{self.graph.file.name}: image {image}: host_inputs {path}: no "
                               "such file on this machine: create it, or remove it from "
                               "host_inputs")
        host = {path: self.hasher.file(Path(path), path) for path in spec.host_inputs}
        return {**self.tree_settings(image), **({"env": env} if env else {}),
                **({"host": host} if host else {})}

    def tree_settings(self, image: str) -> dict[str, Any]:
        """The digest's settings that the tree alone decides: all but the
        machine's (``MACHINE_SETTINGS``: its environment and host files)."""
        inputs = self.inputs()[image]
        settings = self.graph.images[image].settings(self.settings.sandbox)
        # A sensitive variable's value is a secret: records (and the digest) keep its hash.
        settings["vars"] = {k: (f"sha256:{value_hash(v)}" if k in inputs.template.sensitive else v)
                            for k, v in settings["vars"].items()}
        return {**settings, "kind": inputs.kind}

    def git(self) -> dict[str, object]:
        return self._git()

    def channel(self) -> tuple[str, str]:
        """The channel this run publishes to, and a note when it is not the obvious one."""
        return self._channel()

    def published_channel(self) -> str:
        """The channel this branch publishes to once its edits are committed:
        where its AMIs are, dirty tree or not."""
        return channels.choose(self.settings, {**self.git(), "dirty": False})[0]
