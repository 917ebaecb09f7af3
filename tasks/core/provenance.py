"""An AMI's provenance: an in-toto Statement v1 with a SLSA Provenance v1
predicate, made from its record (docs/provenance.md says what each digest
means). Pure: the record and what the run knows go in, a dict comes out,
and ``links`` reads one back for ``doit verify``.

An AMI has no content hash. Its subject digest is this tool's digest of
its inputs (``sha256``: every input file's sha256 and mode, the parent AMI
and the build settings), the value its ``Digest`` tag and record carry.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from .digest import EXECUTABLE
from .records import Record, Tested

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
BUILD_TYPE = "https://amis-doit.dev/packer-ansible/v1"
SOURCE_REPOSITORY = "repository"


def ami_arn(region: str, ami: str) -> str:
    """The AMI's ARN: the name of a subject or a dependency."""
    return f"arn:aws:ec2:{region}::image/{ami}"


def envelope_digest(envelope: bytes) -> str:
    """sha256 of an envelope's bytes as stored: what the AMI's tag and the
    child's statement name."""
    return hashlib.sha256(envelope).hexdigest()


@dataclass(frozen=True)
class BuildContext:
    """What the statement says about the run that built the AMI."""
    channel: str
    builder: str                # the Buildkite pipeline, or host:<name>
    invocation: str             # the Buildkite build URL, or ""
    tool_version: str
    ansible_version: str
    log_name: str
    log_sha256: str


def statement(record: Record, run: BuildContext, parent_envelope: str | None,
              parent_digest: str | None = None) -> dict[str, Any]:
    """The statement for ``record``'s AMIs. ``parent_envelope``: the sha256 of
    the parent's envelope, ``parent_digest`` its inputs' digest, which says
    where its envelope is kept (None: the parent is the source image, or was
    built unsigned)."""
    assert record.parent is not None
    dependencies: list[dict[str, Any]] = [{
        "name": SOURCE_REPOSITORY,
        "digest": {"gitCommit": str(record.git.get("commit", ""))},
        "annotations": {"branch": str(record.git.get("branch", "")),
                        "dirty": bool(record.git.get("dirty", False))},
    }]
    for path, entry in sorted(record.inputs.items()):
        sha, executable = entry.removesuffix(EXECUTABLE), entry.endswith(EXECUTABLE)
        dependency: dict[str, Any] = {"name": path, "digest": {"sha256": sha}}
        if executable:
            dependency["annotations"] = {"executable": True}
        dependencies.append(dependency)
    parent: dict[str, Any] = {"uri": ami_arn(record.region, record.parent["ami"]),
                              "name": record.parent["image"],
                              "annotations": {"role": "parent"}}
    if parent_envelope:
        parent["digest"] = {"sha256": parent_envelope}
        parent["annotations"]["inputsDigest"] = parent_digest or ""
    dependencies.append(parent)
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": ami_arn(region, ami), "digest": {"sha256": record.digest}}
                    for region, ami in sorted(record.amis.items())],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"image": record.image, "channel": run.channel,
                                       "branch": str(record.git.get("branch", ""))},
                "internalParameters": {"packerVersion": record.packer_version or "",
                                       "ansibleVersion": run.ansible_version,
                                       "toolVersion": run.tool_version,
                                       "settings": record.settings},
                "resolvedDependencies": dependencies,
            },
            "runDetails": {
                "builder": {"id": run.builder},
                "metadata": {"invocationId": run.invocation,
                             "startedOn": _utc(record.build_started),
                             "finishedOn": _utc(record.build_finished)},
                "byproducts": [{"name": run.log_name, "digest": {"sha256": run.log_sha256},
                                "mediaType": "text/plain"}],
            },
        },
    }


TEST_PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"


def test_statement(record: Record, tested: Tested, run_url: str) -> dict[str, Any]:
    """What ``record``'s AMIs passed (or failed): an in-toto Test Result
    statement. Its configuration is the test files, by sha256; the tests'
    digest and counts are annotations."""
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": ami_arn(region, ami), "digest": {"sha256": record.digest}}
                    for region, ami in sorted(record.amis.items())],
        "predicateType": TEST_PREDICATE_TYPE,
        "predicate": {
            "result": "PASSED" if tested.passed else "FAILED",
            "configuration": [{"name": path, "digest": {"sha256": entry.removesuffix(EXECUTABLE)}}
                              for path, entry in sorted(tested.files.items())],
            "url": run_url,
            "passedTests": [],
            "warnedTests": [],
            "failedTests": list(tested.failures),
            "annotations": {"testsDigest": tested.digest, "at": tested.at,
                            **{k: int(v) for k, v in tested.counts.items()}},
        },
    }


def test_result(statement_: Mapping[str, Any]) -> tuple[str, str, list[str]]:
    """(result, tests digest, subject AMI ARNs) of a Test Result statement."""
    predicate = statement_.get("predicate") or {}
    annotations = predicate.get("annotations") or {}
    return (str(predicate.get("result", "")), str(annotations.get("testsDigest", "")),
            [str(s.get("name", "")) for s in statement_.get("subject") or []])


def payload(statement_: Mapping[str, Any]) -> bytes:
    return json.dumps(statement_, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Link:
    """One link of a chain, read back from a statement."""
    image: str
    amis: dict[str, str]            # region -> AMI, from the subjects
    digest: str                     # the subject digest: the inputs' digest
    commit: str
    inputs: dict[str, str]          # path -> manifest entry
    parent_image: str
    parent_ami: str
    parent_region: str              # where the build ran: its parent's region
    parent_envelope: str | None
    parent_digest: str
    settings: dict[str, Any]


def link(statement_: Mapping[str, Any]) -> Link:
    """The facts ``doit verify`` checks; ValueError when it is not a
    statement this tool writes."""
    if statement_.get("_type") != STATEMENT_TYPE or \
            statement_.get("predicateType") != PREDICATE_TYPE:
        raise ValueError("not an in-toto v1 statement with a SLSA v1 provenance predicate")
    try:
        definition = statement_["predicate"]["buildDefinition"]
        amis, digests = {}, set()
        for subject in statement_["subject"]:
            region, ami = _from_arn(subject["name"])
            amis[region] = ami
            digests.add(subject["digest"]["sha256"])
        deps = definition["resolvedDependencies"]
        repo = next(d for d in deps if d.get("name") == SOURCE_REPOSITORY)
        parent = next(d for d in deps if d.get("annotations", {}).get("role") == "parent")
        inputs = {d["name"]: d["digest"]["sha256"] + (
                  EXECUTABLE if d.get("annotations", {}).get("executable") else "")
                  for d in deps if d is not repo and d is not parent}
        commit = str(repo["digest"]["gitCommit"])
        return Link(image=definition["externalParameters"]["image"], amis=amis,
                    digest=digests.pop() if len(digests) == 1 else "",
                    commit=commit, inputs=inputs,
                    parent_image=parent["name"], parent_ami=_from_arn(parent["uri"])[1],
                    parent_region=_from_arn(parent["uri"])[0],
                    parent_envelope=parent.get("digest", {}).get("sha256"),
                    parent_digest=parent["annotations"].get("inputsDigest", ""),
                    settings=definition["internalParameters"].get("settings", {}))
    except (KeyError, TypeError, StopIteration, AttributeError) as err:
        raise ValueError(f"the statement lacks {err}") from None


def _from_arn(arn: str) -> tuple[str, str]:
    parts = arn.split(":")
    if len(parts) != 6 or parts[:3] != ["arn", "aws", "ec2"] or \
            not parts[5].startswith("image/"):
        raise ValueError(f"{arn!r} is not an AMI's ARN")
    return parts[3], parts[5][len("image/"):]


def _utc(stamp: str | None) -> str:
    """RFC 3339 in UTC with a Z, as SLSA asks."""
    return (stamp or "").replace("+00:00", "Z")
