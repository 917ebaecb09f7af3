"""Packer's errors name the stage's generated JSON copy of an HCL file; the
user is shown their own file and line instead."""

from __future__ import annotations

import json

from tasks.adapters.stage import to_user

HCL = """source "amazon-ebs" "ami" {
  region        = var.region
  instance_typo = var.instance_type
  ssh_username  = "ec2-user"
}

build {
  sources = ["source.amazon-ebs.ami"]
}
"""


def test_an_error_in_the_generated_copy_is_shown_at_the_users_line(tmp_path):
    root, stage = tmp_path / "repo", tmp_path / "repo/.amis/stage/base-84046e40"
    (root / "packer/ami").mkdir(parents=True)
    (root / "packer/ami/ami.pkr.hcl").write_text(HCL)
    copy = {"source": [{"amazon-ebs": {"ami": {"region": "${var.region}",
                                               "instance_typo": "${var.instance_type}",
                                               "ssh_username": "ec2-user"}}}],
            "build": [{"sources": ["source.amazon-ebs.ami"]}]}
    (stage / "packer/ami").mkdir(parents=True)
    text = json.dumps(copy, indent=2) + "\n"
    (stage / "packer/ami/ami.hcl.pkr.json").write_text(text)
    line = next(i + 1 for i, l in enumerate(text.splitlines()) if "instance_typo" in l)
    error = (f"Error: Unsupported argument\n\n  on .amis/stage/base-84046e40/packer/ami/"
             f"ami.hcl.pkr.json line {line}:\n  (source code not available)\n\nAn argument "
             'named "instance_typo" is not expected here.')
    shown = to_user(error, stage, root)
    assert "  on packer/ami/ami.pkr.hcl line 3:" in shown, shown
    assert ".amis/stage" not in shown
    # a staged file that is the repository's own keeps its line
    other = to_user(f"on {stage}/packer/ami/base.pkrvars.hcl line 4:", stage, root)
    assert other == "on packer/ami/base.pkrvars.hcl line 4:"
    # text about anything else is left alone
    assert to_user("on /etc/hosts line 1:", stage, root) == "on /etc/hosts line 1:"
