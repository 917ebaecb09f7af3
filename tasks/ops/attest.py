"""Signing what a build made: its provenance statement (core/provenance)
as a DSSE envelope, stored beside its digest record, named by a tag on
each of its AMIs and by its record. With AMI_SIGNING_KEY set, a build
whose statement cannot be signed or stored is not published; without it,
the build is recorded unsigned and ``plan`` says so."""

from __future__ import annotations

import socket
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any, Callable

from ..adapters import signing
from ..adapters.ec2 import Ec2
from ..adapters.registry import Registry
from ..core import provenance
from ..core.digest import file_sha256
from ..core.errors import AmiError
from ..core.names import TOOL_VERSION
from ..core.records import Record, Tested
from ..core.settings import Settings

TAG = "Provenance"


def _ansible_version() -> str:
    try:
        return metadata.version("ansible-core")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Attester:
    settings: Settings
    registry: Registry
    ec2: Ec2
    signer: Callable[[], Any]           # AMI_SIGNING_KEY's signer, made once per run
    channel: Callable[[], str]          # the channel the run publishes to

    def context(self, log: Path) -> provenance.BuildContext:
        buildkite = self.settings.buildkite
        builder = f"https://buildkite.com/{buildkite.pipeline_slug}" \
            if buildkite.pipeline_slug else f"host:{socket.gethostname()}"
        return provenance.BuildContext(
            channel=self.channel(), builder=builder,
            invocation=buildkite.build_url if buildkite.active else "",
            tool_version=TOOL_VERSION, ansible_version=_ansible_version(), log_name=log.name,
            log_sha256=file_sha256(log) if log.is_file() else "")

    def sign_tests(self, record: Record, tested: Tested) -> Tested:
        """``tested`` with its signed statement's sha256: a Test Result
        statement of ``record``'s AMIs, kept beside their build statement.
        Unchanged when no key is configured."""
        if not self.settings.signing_key:
            return tested
        buildkite = self.settings.buildkite
        statement = provenance.test_statement(record, tested,
                                              buildkite.build_url if buildkite.active else "")
        try:
            envelope = signing.sign(provenance.payload(statement), provenance.PAYLOAD_TYPE,
                                    self.signer())
            for ami in record.amis.values():
                self.registry.put(self.registry.test_attestation_key(record.image, record.digest,
                                                                     ami), envelope)
        except AmiError as err:
            raise AmiError(f"image {record.image}: signing its test result: {err}; nothing "
                           "published", err.code) from None
        return replace(tested, statement=provenance.envelope_digest(envelope))

    def sign(self, record: Record, log: Path, parent: Record | None) -> Record:
        """``record`` signed: its envelope stored and its AMIs tagged with the
        envelope's sha256. ``parent``: the parent image's current record.
        Unchanged when no key is configured."""
        if not self.settings.signing_key:
            return record
        parent_envelope = parent.provenance if parent and record.parent and \
            parent.ami == record.parent["ami"] else None
        statement = provenance.statement(record, self.context(log), parent_envelope,
                                         parent.digest if parent_envelope and parent else None)
        try:
            envelope = signing.sign(provenance.payload(statement), provenance.PAYLOAD_TYPE,
                                    self.signer())
            sha = provenance.envelope_digest(envelope)
            for region, ami in record.amis.items():
                self.registry.put(self.registry.attestation_key(record.image, record.digest,
                                                                ami), envelope)
                self.ec2.tag(region, ami, {TAG: sha})
        except AmiError as err:
            raise AmiError(f"image {record.image}: {err}; nothing published, the previous AMI "
                           "stays current", err.code) from None
        return replace(record, provenance=sha)
