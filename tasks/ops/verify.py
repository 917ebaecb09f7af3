"""``doit verify``: is this AMI exactly what a commit of this repository
builds, signed by our key, on parents that are too, back to the source?

Each link starts from what is on the AMI itself (its Image, Digest and
Provenance tags), so a record or tag written by hand proves nothing: the
envelope must hash to the Provenance tag, its signature must verify with
the key, its subject must be this AMI, its subject digest must be what its
inputs, parent AMI and settings hash to, and the recorded commit must build
exactly that: the commit's files are written out from git's objects and
the image's inputs walked there anew, so an input the statement leaves out
is found as surely as one it changes (``--worktree`` walks the working
tree instead). The parent link is then checked the same way, from the
envelope digest the child's statement names.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ..adapters import signing
from ..adapters.console import Console
from ..adapters.ec2 import Ec2
from ..adapters.git import Git
from ..adapters.kms import Kms
from ..adapters.registry import Registry, revoked_by
from ..core import provenance
from ..core.clock import Clock
from ..core.cloud import Ami
from ..core.digest import changed_inputs, image_digest
from ..core.errors import FAILED, AmiError
from ..core.graph import Graph, load_graph
from ..core.settings import Settings
from ..state.attestations import statement
from ..state.checkout import MACHINE_SETTINGS, Checkout
from .targets import chosen_ami


COMMIT_RE = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")      # SHA-1 or SHA-256 object names


@dataclass(frozen=True)
class _Step:
    image: str
    ami: str
    region: str
    envelope_sha: str | None       # what the child's statement says (None: the AMI's tag)
    source: bool = False           # the source image: only its revocation is checked
    found: Ami | None = None       # the AMI's description, when already looked up


class _Trees:
    """What each link is checked against: the working tree, or each recorded
    commit written out once from git's objects, each walked as a build
    would walk it."""

    def __init__(self, verifier: "Verifier", scratch: Path, worktree: bool) -> None:
        self.verifier, self.scratch, self.worktree = verifier, scratch, worktree
        self._made: dict[tuple[str, bool], Checkout] = {}

    def name(self, commit: str) -> str:
        return "the working tree" if self.worktree else f"commit {commit[:12]}"

    def at(self, step: _Step, commit: str, sandbox: bool) -> Checkout:
        at = "" if self.worktree else commit
        if (at, sandbox) not in self._made:
            settings = replace(self.verifier.settings, sandbox=sandbox)
            self._made[at, sandbox] = Checkout(settings, self._graph(step, commit),
                                               self.verifier.checkout.hasher,
                                               self.verifier.git)
        return self._made[at, sandbox]

    def _graph(self, step: _Step, commit: str) -> Graph:
        if self.worktree:
            return self.verifier.graph
        if not COMMIT_RE.fullmatch(commit):        # it goes to git and names a folder
            raise _fail(step, f"its statement names no commit ({commit!r}: built outside git?): "
                              "only --worktree can check it")
        dest = self.scratch / commit
        if not dest.is_dir():
            dest.mkdir()
            if not self.verifier.git.export(commit, dest, self.verifier.settings.env):
                raise _fail(step, f"commit {commit[:12]} is not in this repository, or git "
                                  "could not write it out: fetch it, and run again")
        name = self.verifier.graph.file.name
        if not (dest / name).resolve().is_relative_to(dest.resolve()):
            raise _fail(step, f"commit {commit[:12]}'s {name} is a symlink to outside the "
                              "repository: verify reads only what the commit holds")
        try:
            return load_graph(dest, name)
        except AmiError as err:
            raise _fail(step, f"commit {commit[:12]} cannot be read: {err}") from None
        except (OSError, ValueError, TypeError, RecursionError) as err:
            raise _fail(step, f"commit {commit[:12]}'s {name} cannot be read "
                              f"({type(err).__name__}: {err})") from None


def _fail(step: _Step, why: str) -> AmiError:
    return AmiError(f"verify: {step.image or 'AMI'} {step.ami}: {why}", FAILED)


def _built_at(step: _Step, tree: Checkout, against: str) -> tuple[dict[str, str], dict]:
    """The image's inputs and tree settings as ``tree`` builds them."""
    if step.image not in tree.graph.images:
        raise _fail(step, f"{against} has no image {step.image} in its "
                          f"{tree.graph.file.name}")
    try:
        return tree.manifest(step.image), tree.tree_settings(step.image)
    except AmiError as err:
        raise _fail(step, f"{against} does not build it: {err}") from None


@dataclass
class Verifier:
    graph: Graph
    settings: Settings
    checkout: Checkout
    registry: Registry
    ec2: Ec2
    kms: Kms
    git: Git
    clock: Clock
    console: Console

    def verify(self, ami: str, image: str, key: str, worktree: bool,
               require_tests: bool = False) -> None:
        ami = chosen_ami(self.registry, self.checkout, self.settings, "verify", ami, image,
                         self.graph.images)
        if key:
            public = signing.pem_public_key(self.settings.root / key, f"verify --key={key}")
        elif self.settings.signing_key:
            public = signing.public_key(self.settings.signing_key, self.settings.root, self.kms,
                                        self.settings.sandbox)
        else:
            raise AmiError("verify: no key to check signatures with: give --key <public key "
                           "PEM> or set AMI_SIGNING_KEY")
        revoked = self.registry.revoked()
        step: _Step | None = self._first(image, ami)
        if require_tests and step is not None:
            self.console.say(self._tests_passed(step, public))
        with tempfile.TemporaryDirectory(prefix="amis-verify-") as scratch:
            trees = _Trees(self, Path(scratch), worktree)
            while step is not None:
                note = revoked.get(step.ami)
                if note is not None:
                    raise _fail(step, revoked_by(note))
                if step.source:
                    break
                line, step = self._link(step, public, trees)
                self.console.say(line)

    def _tests_passed(self, step: _Step, key: object) -> str:
        """The AMI's signed test result says PASSED, for this AMI and digest."""
        found = step.found or self.ec2.describe(step.region, [step.ami]).get(step.ami)
        if found is None:
            raise _fail(step, f"no such AMI in {step.region}")
        image, digest = found.tags.get("Image", ""), found.tags.get("Digest", "")
        where = self.registry.url(self.registry.test_attestation_key(image, digest, step.ami))
        body = self.registry.get(self.registry.test_attestation_key(image, digest, step.ami))
        if body is None:
            raise _fail(step, f"no signed test result at {where}: it never passed its tests "
                              "(--require-tests)")
        try:
            payload = json.loads(signing.opened(body[0], key, where))
        except ValueError:
            raise _fail(step, f"{where}: not a statement") from None
        result, tests, subjects = provenance.test_result(payload)
        if payload.get("predicateType") != provenance.TEST_PREDICATE_TYPE:
            raise _fail(step, f"{where}: not a test result statement")
        if provenance.ami_arn(step.region, step.ami) not in subjects:
            raise _fail(step, f"{where}: the test result is of another AMI")
        if result != "PASSED":
            raise _fail(step, f"its tests {tests[:12]} failed ({where})")
        return f"{image} {step.ami} ({step.region}): passed its tests {tests[:12]} (signed)"

    def _first(self, image: str, ami: str) -> _Step:
        """The first link, in the region the AMI is in: the main region, else
        any region amis.yaml copies to (``-a`` may name a copy)."""
        regions = [self.graph.region] + sorted({r for i in self.graph.images.values()
                                               for r in i.regions} - {self.graph.region})
        for region in regions:
            found = self.ec2.describe(region, [ami]).get(ami)
            if found is not None:
                return _Step(image, ami, region, None, found=found)
        return _Step(image, ami, self.graph.region, None)     # its link says it is not there

    def _check_source(self, step: _Step, spec: dict, ami: str, region: str,
                      against: str) -> None:
        """The source AMI is the one the commit's amis.yaml pins, or one its
        filter selects (owner and name; which match was newest then cannot be
        told now)."""
        if "ami" in spec:
            if spec["ami"] != ami:
                raise _fail(step, f"{against} pins its source to {spec['ami']}, not {ami}")
            return
        if not self.ec2.matching(region, spec["owners"], spec["name_pattern"], ami):
            raise _fail(step, f"its source {ami} is not an image {against}'s source filter "
                              f"selects (owners {', '.join(spec['owners'])}, name "
                              f"{spec['name_pattern']!r})")

    def _link(self, step: _Step, key: object, trees: _Trees) -> tuple[str, _Step | None]:
        found = step.found or self.ec2.describe(step.region, [step.ami]).get(step.ami)
        if found is None:
            raise _fail(step, f"no such AMI in {step.region}")
        # EC2 is the second witness of a revocation, should its object be deleted.
        if found.state != "available":
            raise _fail(step, f"it is {found.state} in EC2 ({step.region})")
        if found.deprecated_at is not None and found.deprecated_at <= self.clock.now():
            raise _fail(step, f"it is deprecated in EC2 since "
                              f"{found.deprecated_at.isoformat(timespec='seconds')}")
        tags = found.tags
        image, digest, sha = tags.get("Image", ""), tags.get("Digest", ""), tags.get(
            "Provenance")
        if step.image and image != step.image:
            raise _fail(step, f"its Image tag says {image!r}")
        step = _Step(image, step.ami, step.region, step.envelope_sha)
        if step.envelope_sha and sha and sha != step.envelope_sha:
            raise _fail(step, f"its Provenance tag {sha[:12]} is not the statement its child "
                              f"names ({step.envelope_sha[:12]})")
        try:
            link = statement(self.registry, key, image, digest, step.ami, step.region, sha)
        except AmiError as err:
            raise _fail(step, str(err)) from None
        if image_digest(link.inputs, link.parent_ami, link.settings) != link.digest:
            raise _fail(step, "its statement's inputs, parent and settings do not hash to its "
                              "digest")
        against = trees.name(link.commit)
        tree = trees.at(step, link.commit, bool(link.settings.get("sandbox")))
        now, settings = _built_at(step, tree, against)
        differs = changed_inputs(link.inputs, now)
        if differs:
            first = differs[0]
            what = (f"{first} is an input there that the statement leaves out"
                    if first not in link.inputs else f"{first} is in the statement but not an input "
                    "there" if first not in now else f"{first} differs from the statement")
            more = f" (and {len(differs) - 1} more)" if len(differs) > 1 else ""
            raise _fail(step, f"{against} builds something else: {what}{more}")
        signed = {k: v for k, v in link.settings.items() if k not in MACHINE_SETTINGS}
        if signed != settings:
            keys = sorted(k for k in set(signed) | set(settings) if signed.get(k) != settings.get(k))
            raise _fail(step, f"{against} builds {image} with other settings: {', '.join(keys)} "
                              "differ from the statement")
        line = (f"{image} {step.ami} ({step.region}): signature ok, subject ok, "
                f"{len(link.inputs)} inputs as at {against}")
        built_on = tree.graph.images[image].parent
        if built_on != link.parent_image:
            raise _fail(step, f"{against} builds {image} on {built_on}, not on "
                              f"{link.parent_image} as its statement says")
        source = tree.graph.source
        if link.parent_image == source.name:       # the source as the commit names it
            self._check_source(step, source.spec(bool(link.settings.get("sandbox"))),
                               link.parent_ami, link.parent_region, against)
            return (line + f"; built on source {source.name} {link.parent_ami}",
                    _Step(source.name, link.parent_ami, link.parent_region, None, source=True))
        if not link.parent_envelope:
            raise _fail(step, f"its parent {link.parent_image} {link.parent_ami} was built "
                              "unsigned: the chain stops there")
        return line, _Step(link.parent_image, link.parent_ami, link.parent_region, link.parent_envelope)
