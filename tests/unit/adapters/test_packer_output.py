"""Packer's machine-readable output: parsing, artifacts, errors."""

from __future__ import annotations

import pytest

from tasks.adapters.packer_output import (MASK, Masker, Output, Result, parse_artifact_ids,
                                          parse_line, phase_of)


def feed(lines: list[str]) -> tuple[Output, list[str]]:
    out = Output()
    shown = []
    for line in lines:
        shown += out.readable(line + "\n")
    return out, shown


def test_multi_region_artifact_with_escaped_commas():
    out, _ = feed(["1,amazon-ebs,artifact,0,id,eu-west-1:ami-0123456789abcdef0"
                   "%!(PACKER_COMMA)us-east-1:ami-fedcba98"])
    assert out.amis == {"eu-west-1": "ami-0123456789abcdef0", "us-east-1": "ami-fedcba98"}


def test_ui_lines_are_unescaped_and_split():
    _, shown = feed(["1,,ui,say,\\n==> amazon-ebs: a%!(PACKER_COMMA) b\\nsecond line",
                     "1,,ui,message,    amazon-ebs: x\\r"])
    assert shown == ["==> amazon-ebs: a, b", "second line", "    amazon-ebs: x"]


def test_error_lines_are_collected():
    out, shown = feed(["1,,error-count,1",
                       "1,amazon-ebs,error,InvalidAMIID.NotFound: nope%!(PACKER_COMMA) really"])
    assert out.errors == ["InvalidAMIID.NotFound: nope, really"]
    assert shown == []


def test_the_word_error_in_ui_output_is_not_an_error():
    out, shown = feed(["1,,ui,message,    amazon-ebs: Installing libgpg-error: Error: none"])
    assert out.errors == [] and shown == ["    amazon-ebs: Installing libgpg-error: Error: none"]


def test_non_machine_readable_lines_pass_through():
    assert parse_line("panic: something\n") is None
    assert parse_line("") is None
    _, shown = feed(["plain text from a wrapper", ""])
    assert shown == ["plain text from a wrapper"]


def test_artifact_ids_ignore_junk():
    assert parse_artifact_ids("eu-west-1:ami-1234,nonsense,us-east-1:ami-12345678") == \
        {"us-east-1": "ami-12345678"}


def test_result_needs_exit_zero_no_errors_and_an_artifact():
    amis = {"eu-west-1": "ami-12345678"}
    assert Result(0, amis).ok
    assert not Result(1, amis).ok and "exited 1" in Result(1, amis).reason()
    assert not Result(0, amis, ["boom"]).ok
    assert not Result(0, {}).ok and "no AMI artifact" in Result(0, {}).reason()


def test_the_build_instance_id_is_picked_up():
    out, _ = feed(["1,,ui,message,    amazon-ebs: Instance ID: i-9f487a3607186bf15",
                   "1,,ui,message,    amazon-ebs: Instance ID: i-00000000000000000"])
    assert out.instance == "i-9f487a3607186bf15"


def test_masker_handles_escaped_forms():
    mask = Masker(["a,b\nc"])
    assert mask("x a%!(PACKER_COMMA)b\\nc y") == f"x {MASK} y"
    assert mask("a,b\nc") == MASK


@pytest.mark.parametrize("said, phase", [
    ("==> amazon-ebs.ami: Launching a source AWS instance...", "launching"),
    ("==> amazon-ebs.ami: Provisioning with shell script: /tmp/x.sh", "provisioning"),
    ("==> amazon-ebs.ami: Creating AMI SjLZTXz from instance i-15cfd00a853f28e3e", "creating AMI"),
    ("==> amazon-ebs.ami: Creating AMI tags", "tagging"),
    ("==> amazon-ebs.ami: Copying/Encrypting AMI (ami-13edb7da55b8a29bd) to other regions...",
     "copying"),
    ("    amazon-ebs.ami: Adding tag: \"Image\": \"web\"", None),
    ("==> amazon-ebs.ami: Prevalidating any provided VPC information", "preparing"),
])
def test_packer_lines_name_the_phase_they_start(said, phase):
    assert phase_of(said) == phase
