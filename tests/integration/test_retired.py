"""Images removed from or renamed in amis.yaml: plan and amis name the
records the graph no longer has, and gc --apply retires them (record,
plain-text id, SSM parameter), then their AMIs by the usual rules."""

from __future__ import annotations

import re

from support.project import current_ami, ok

SSM = {"AMI_SSM_PREFIX": "/amis"}
NOTE = ("channel main holds records of {}, which amis.yaml no longer has (removed or "
        "renamed): `doit gc --apply` retires them, then their AMIs")


def _exists(aws, ami: str) -> bool:
    return bool(aws.ec2.describe_images(Owners=["self"], Filters=[
        {"Name": "image-id", "Values": [ami]}])["Images"])


def _parameter(tree, name: str) -> str | None:
    found = tree.client("ssm").get_parameters(Names=[name])["Parameters"]
    return found[0]["Value"] if found else None


def _drop(tree, image: str, rename: str | None = None) -> None:
    text = (tree.path / "amis.yaml").read_text()
    block = re.search(rf"  {image}:\n    parent: base\n(    .*\n)*", text)
    assert block
    renamed = f"  {rename}:\n    parent: base\n    playbook: ansible/{image}_ami.yaml\n"
    tree.write("amis.yaml", text.replace(block.group(0), renamed if rename else ""))


def test_a_removed_image_is_named_then_retired_with_its_amis(tree, aws):
    ok(tree.doit("amis", env=SSM))
    deploy = current_ami(aws, "deploy")
    kept = {image: current_ami(aws, image) for image in ("base", "web", "worker", "build")}
    _drop(tree, "deploy")
    plan = ok(tree.doit("plan", env=SSM)).stdout
    assert NOTE.format("deploy") in plan, plan
    tree.reset_count()
    run = ok(tree.doit("amis", env=SSM)).stdout
    assert NOTE.format("deploy") in run and tree.packer_builds() == [], run

    dry = ok(tree.doit("gc", "--keep", "1", "--days", "0", env=SSM)).stdout
    assert "would retire deploy from channel main: its record, plain-text id and SSM " \
           "parameter (amis.yaml no longer has it)" in dry, dry
    row = next(line for line in dry.splitlines() if line.startswith("deploy ") and deploy in line)
    assert "would delete" in row and "deploy is retired (not in amis.yaml, in no channel)" in row
    assert "channels/main/deploy.json" in tree.objects() and _exists(aws, deploy)

    out = ok(tree.doit("gc", "--keep", "1", "--days", "0", "--apply", env=SSM)).stdout
    assert f"retired deploy ({deploy}) from channel main" in out, out
    objects = tree.objects()
    assert "channels/main/deploy.json" not in objects and "channels/main/deploy.txt" not in objects
    assert _parameter(tree, "/amis/main/deploy") is None
    assert not _exists(aws, deploy)
    assert not tree.record("deploy").exists()
    for image, ami in kept.items():                  # the rest stays current and kept
        assert current_ami(aws, image) == ami and _exists(aws, ami)
        assert _parameter(tree, f"/amis/main/{image}") == ami
    assert NOTE.format("deploy") not in ok(tree.doit("plan", env=SSM)).stdout


def test_a_renamed_image_is_built_anew_and_a_promoted_old_one_stays_where_it_was_promoted(
        tree, aws):
    ok(tree.doit("amis", env=SSM))
    worker = current_ami(aws, "worker")
    ok(tree.doit("promote", "-i", "worker", "-f", "main", "-t", "production", env=SSM))
    _drop(tree, "worker", rename="jobs")
    tree.reset_count()
    run = ok(tree.doit("amis", env=SSM)).stdout
    assert tree.packer_builds() == ["jobs"] and NOTE.format("worker") in run, run

    out = ok(tree.doit("gc", "--keep", "1", "--days", "0", "--apply", env=SSM)).stdout
    assert f"retired worker ({worker}) from channel main" in out, out
    assert "channel production holds records of worker, which this amis.yaml does not have; " \
           "left as they are (to retire them there: AMI_CHANNEL=production doit gc --apply)" \
           in out, out
    row = next(line for line in out.splitlines() if line.startswith("worker ") and worker in line)
    assert "keep" in row and "current in channel production" in row, row
    assert _exists(aws, worker) and "channels/main/worker.json" not in tree.objects()

    out = ok(tree.doit("gc", "--keep", "1", "--days", "0", "--apply",
                       env={**SSM, "AMI_CHANNEL": "production"})).stdout
    assert f"retired worker ({worker}) from channel production" in out, out
    assert not _exists(aws, worker)
    assert current_ami(aws, "jobs") and _exists(aws, current_ami(aws, "jobs"))
