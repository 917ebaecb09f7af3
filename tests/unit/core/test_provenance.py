"""The provenance statement, in process: valid for the in-toto library's own
Statement checks and SLSA's Provenance model, and read back as written."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from tasks.core import provenance
from tasks.core.digest import image_digest
from tasks.core.records import Record

INPUTS = {"ansible/web_ami.yaml": "a" * 64, "packer/ami/scripts/setup.sh": "b" * 64 + "+x"}
SETTINGS = {"regions": ["eu-west-1", "us-east-1"]}
DIGEST = image_digest(INPUTS, "ami-0000000000000000a", SETTINGS)
RECORD = Record(image="web", region="eu-west-1",
                amis={"eu-west-1": "ami-0000000000000000b", "us-east-1": "ami-0000000000000000c"},
                digest=DIGEST, parent={"image": "base", "ami": "ami-0000000000000000a"},
                git={"commit": "c" * 40, "branch": "main", "dirty": False}, settings=SETTINGS,
                packer_version="1.6.6", build_started="2026-12-02T10:00:00+00:00",
                build_finished="2026-12-02T10:04:00+00:00", inputs=INPUTS)
RUN = provenance.BuildContext(channel="main", builder="host:agent-1", invocation="", tool_version="0.21.0",
                     ansible_version="2.17.0", log_name="web-20261202T100000Z.log",
                     log_sha256="d" * 64)


def test_the_statement_is_valid_in_toto_and_slsa():
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement
    made = provenance.statement(RECORD, RUN, "e" * 64, "f" * 64)
    Statement.copy_from_pb(json_format.ParseDict(made, statement_pb2.Statement())).validate()
    json_format.ParseDict(made["predicate"], provenance_pb2.Provenance())
    assert [s["name"] for s in made["subject"]] == [
        "arn:aws:ec2:eu-west-1::image/ami-0000000000000000b",
        "arn:aws:ec2:us-east-1::image/ami-0000000000000000c"]
    assert made["predicate"]["runDetails"]["metadata"]["startedOn"] == "2026-12-02T10:00:00Z"


def test_a_statement_reads_back_as_it_was_made():
    link = provenance.link(provenance.statement(RECORD, RUN, "e" * 64, "f" * 64))
    assert link.amis == RECORD.amis and link.inputs == INPUTS and link.digest == DIGEST
    assert (link.parent_image, link.parent_ami, link.parent_envelope, link.parent_digest) == (
        "base", "ami-0000000000000000a", "e" * 64, "f" * 64)
    assert image_digest(link.inputs, link.parent_ami, link.settings) == link.digest
    unsigned_parent = provenance.link(provenance.statement(RECORD, RUN, None))
    assert unsigned_parent.parent_envelope is None


@pytest.mark.parametrize("broken", [{"_type": "https://in-toto.io/Statement/v0.1"},
                                    {"subject": [{"name": "ami-1", "digest": {}}]},
                                    {"predicate": {}}])
def test_what_is_not_our_statement_is_refused(broken):
    with pytest.raises(ValueError):
        provenance.link({**provenance.statement(RECORD, RUN, None), **broken})

