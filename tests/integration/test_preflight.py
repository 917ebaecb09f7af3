"""What a run says around a build: a region AWS does not have is one line
from plan and amis (validate runs the same check), naming amis.yaml and
the image, with the region meant, before Packer runs; a run that built
ends by saying where the build logs are."""

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


def test_a_run_that_built_says_where_its_logs_are(tree, aws):
    import re

    from support.project import ok
    out = ok(tree.doit("ami:base")).stdout
    found = re.search(r"^build logs in \.amis/logs/: (base-\d{8}T\d{6}Z\.log)$", out, re.M)
    assert found, out
    assert (tree.path / ".amis/logs" / found.group(1)).is_file()
    assert "build logs in" not in ok(tree.doit("ami:base")).stdout       # nothing built
