"""Operations: provenance, plan, graph, explain, channels, Buildkite, gc."""

from __future__ import annotations

import json
import re

from support.project import REGION, ok, plan_rows

BUILD_URL = "https://buildkite.com/acme/amis/builds/42"


def _tags(aws, ami):
    image = aws.ec2.describe_images(ImageIds=[ami])["Images"][0]
    return {t["Key"]: t["Value"] for t in image["Tags"]}


def test_amis_and_snapshots_carry_provenance(project, aws):
    (project.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n[]\n")  # dirty tree
    ok(project.doit("amis", env={"BUILDKITE": "true", "BUILDKITE_BUILD_URL": BUILD_URL}))
    web = json.loads(project.record("web").read_text())
    assert web["git"]["dirty"] is True and web["git"]["build_url"] == BUILD_URL
    tags = _tags(aws, web["amis"][REGION])
    assert tags["Dirty"] == "true" and tags["PackerVersion"] == "1.6.6"
    assert tags["BuildUrl"] == BUILD_URL and tags["ParentImage"] == "base"
    assert tags["ParentAmi"] == web["parent"]["ami"] and tags["Commit"] == web["git"]["commit"]
    snapshots = aws.ec2.describe_snapshots(
        Filters=[{"Name": "tag:Image", "Values": ["web"]}])["Snapshots"]
    assert snapshots
    snap_tags = {t["Key"]: t["Value"] for t in snapshots[0]["Tags"]}
    assert snap_tags["Digest"] == web["digest"] and snap_tags["BuildUrl"] == BUILD_URL


def test_plan_gives_durations_and_the_critical_path(project, tmp_path):
    from support.project import FAKE_PACKER

    fake = {"PACKER": str(FAKE_PACKER), "FAKE_PACKER_SLEEP": "2"}
    ok(project.doit("amis", env=fake))
    (project.path / "ansible/base_ami.yaml").write_text(
        (project.path / "ansible/base_ami.yaml").read_text() + "\n")
    result = ok(project.doit("plan", "-n", "4"))
    rows = plan_rows(result.stdout)
    for image in ("base", "web", "worker", "build", "deploy"):
        assert re.search(r"build\s+ami-\w+\s+\d+s\s", rows[image]), rows[image]
    total = re.search(r"5 to build: about (\d+)s one at a time, (\d+)s with -n 4 "
                      r"\(critical path base -> (\w+): (\d+)s\)", result.stdout)
    assert total, result.stdout
    sequential, parallel, critical = int(total[1]), int(total[2]), int(total[4])
    assert sequential >= 10 and critical >= 4 and parallel == critical < sequential


