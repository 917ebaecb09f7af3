"""Cloud-init user-data: what a rendered file must be."""

from __future__ import annotations

import re

import pytest

from tasks.core.errors import AmiError
from tasks.ops import cloud_init


@pytest.mark.parametrize("line, what", [
    ("AKIAABCDEFGHIJKLMNOP", "an AWS access key id"),
    ("0123456789abcdef0123456789abcdef", "a 32-hex-digit key"),
    ("-----BEGIN RSA PRIVATE KEY-----", "a private key"),
])
def test_check_refuses_secret_values(line, what):
    text = f"#cloud-config\nruncmd:\n  - [echo, '{line}']\n"
    with pytest.raises(AmiError, match=f"x.yaml: line 3 holds what looks like {what}"):
        cloud_init.check(text, "x.yaml")


@pytest.mark.parametrize("text, expected", [
    ("runcmd: []\n", "must start with a '#cloud-config' line"),
    ("#cloud-config\nruncmd: [\n", "not valid YAML"),
    ("#cloud-config\nrun_cmd: []\n", "unknown cloud-config key 'run_cmd'"),
    ("#cloud-config\nwrite_files:\n  - path: /x\n", "write_files entry 1 needs 'path' and 'content'"),
])
def test_check_refuses_invalid_cloud_config(text, expected):
    with pytest.raises(AmiError, match=re.escape(expected)):
        cloud_init.check(text, "x.yaml")
