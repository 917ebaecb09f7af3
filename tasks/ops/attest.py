"""Signing what a build made: its provenance statement (core/provenance)
as a DSSE envelope, stored beside its digest record, named by a tag on
each of its AMIs and by its record. With AMI_SIGNING_KEY set, a build
whose statement cannot be signed or stored is not published; without it,
the build is recorded unsigned and ``plan`` says so."""

from __future__ import annotations

import socket
from dataclasses import replace
from importlib import metadata
from pathlib import Path

from ..adapters import signing
from ..core import provenance
from ..core.digest import file_sha256
from ..core.errors import AmiError
from ..core.names import TOOL_VERSION
from ..core.records import Record
from .run import Run

TAG = "Provenance"


def _ansible_version() -> str:
    try:
        return metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        return "unknown"


def context(run: Run, log: Path) -> provenance.Run:
    buildkite = run.settings.buildkite
    builder = f"https://buildkite.com/{buildkite.pipeline_slug}" if buildkite.pipeline_slug \
        else f"host:{socket.gethostname()}"
    return provenance.Run(channel=run.channel()[0], builder=builder,
                          invocation=buildkite.build_url, tool_version=TOOL_VERSION,
                          ansible_version=_ansible_version(), log_name=log.name,
                          log_sha256=file_sha256(log) if log.is_file() else "")


def sign(run: Run, record: Record, log: Path) -> Record:
    """``record`` signed: its envelope stored and its AMIs tagged with the
    envelope's sha256. Unchanged when no key is configured."""
    if not run.settings.signing_key:
        return record
    parent = run.lookup.record(record.parent["image"]) if record.parent else None
    parent_envelope = parent.provenance if parent and parent.ami == record.parent["ami"] \
        else None
    statement = provenance.statement(record, context(run, log), parent_envelope,
                                     parent.digest if parent_envelope and parent else None)
    try:
        envelope = signing.sign(provenance.payload(statement), provenance.PAYLOAD_TYPE,
                                run.signer())
        sha = provenance.envelope_digest(envelope)
        for region, ami in record.amis.items():
            run.registry.put(run.registry.attestation_key(record.image, record.digest, ami),
                             envelope)
            run.aws.tag(region, ami, {TAG: sha})
    except AmiError as err:
        raise AmiError(f"image {record.image}: {err}; nothing published, the previous AMI "
                       "stays current", err.code) from None
    return replace(record, provenance=sha)
