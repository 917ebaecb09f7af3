"""Mistakes caught before a build: a region AWS does not have is one line
from plan and amis (validate runs the same check), naming amis.yaml and
the image, with the region meant, before Packer runs."""

from __future__ import annotations

import pytest

from support.project import failed


@pytest.mark.parametrize("command", [["plan"], ["amis"]])   # validate: the same preflight
def test_a_region_typo_is_caught_before_any_build(tree, aws, command):
    text = (tree.path / "amis.yaml").read_text()
    assert "regions: [eu-west-1, us-east-1]" in text
    tree.write("amis.yaml", text.replace("regions: [eu-west-1, us-east-1]",
                                         "regions: [eu-west-1, us-esat-1]"))
    out = failed(tree.doit(*command))
    assert "amis.yaml: image web: region 'us-esat-1' is not an AWS region: did you mean " \
           "us-east-1?" in out, out
    assert "web" not in tree.packer_builds()
