"""The operating commands in process: explain follows records back to the
source, promote checks every image before moving any, inputs lists each
input and why, gc goes oldest first and finds Packer's leftovers, and
Packer is handed exactly the image's stage."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from tasks.adapters.fakes import MemoryStore
from tasks.core import channels
from tasks.core.errors import AmiError
from tasks.core.records import Record
from tasks.ops import explain, gc, invocation, listing, promote
from tasks.ops.gc import Candidate


def published(tree, *records: Record, channel: str = "main") -> None:
    run, _ = tree.run()
    for r in records:
        run.registry.publish(r, channel, new_build=True)


CENTOS = Record(image="centos", region="eu-west-1", amis={"eu-west-1": "ami-bb9a6bc2"},
                digest="0" * 64, source={"ami": "ami-bb9a6bc2", "resolved": "pinned"})
BASE = Record(image="base", region="eu-west-1", amis={"eu-west-1": "ami-0000000b"},
              digest="b" * 64, parent={"image": "centos", "ami": "ami-bb9a6bc2"},
              git={"branch": "main", "commit": "c" * 40, "dirty": False},
              build_finished="2026-11-20T10:00:00+00:00")
WEB = Record(image="web", region="eu-west-1",
             amis={"eu-west-1": "ami-0000000c", "us-east-1": "ami-0000000d"},
             digest="d" * 64, parent={"image": "base", "ami": "ami-0000000b"},
             git={"branch": "main", "commit": "e" * 40, "dirty": True},
             build_finished="2026-11-21T10:00:00+00:00")


def test_explain_follows_an_ami_in_any_region_back_to_the_source(tree):
    tree.store = MemoryStore()
    published(tree, CENTOS, BASE, WEB)
    run, _ = tree.run()
    lines = explain.explain(run, "ami-0000000d").splitlines()
    assert lines[0] == ("ami-0000000d  web: built 2026-11-21T10:00:00+00:00 from main @ "
                        "eeeeeeeeeeee (dirty), digest dddddddddddd")
    assert lines[1].startswith("  └ ami-0000000b  base: built ")
    assert lines[2] == "    └ ami-bb9a6bc2  centos: source image (pinned)"
    with pytest.raises(AmiError, match="ami-12345678: no record of this project built it"):
        explain.explain(run, "ami-12345678")
    with pytest.raises(AmiError, match="explain --ami='web': not an AMI id"):
        explain.explain(run, "web")


def test_promote_checks_every_image_before_moving_any(tree, aws):
    tree.store = MemoryStore()
    ami = aws.ec2.register_image(Name="base-x", RootDeviceName="/dev/sda1")["ImageId"]
    base = Record(**{**BASE.__dict__, "amis": {"eu-west-1": ami}})
    published(tree, base, channel="candidate")        # web has no record there
    before = dict(tree.store.objects)
    run, _ = tree.run()
    with pytest.raises(AmiError, match="channel candidate has no record of centos"):
        promote.promote(run, "all", "candidate", "main")
    assert tree.store.objects == before
    promote.promote(run, "base", "candidate", "main")
    now = json.loads(tree.store.objects["channels/main/base.json"])
    assert now["amis"] == {"eu-west-1": ami} and now["promotion"]["from_channel"] == "candidate"
    with pytest.raises(AmiError, match=r"promote --to: give a channel or a branch name"):
        promote.promote(run, "base", "candidate", "")
    run, out = tree.run()
    promote.promote(run, "base", "candidate", "Main")      # a branch, not the main channel
    channel = channels.channel_for_branch("Main")
    assert f"promote --to Main: branch Main publishes to channel {channel}" in out.getvalue()
    assert channel != "main" and f"channels/{channel}/base.json" in tree.store.objects


def test_inputs_lists_each_input_and_what_brought_it_in(tree):
    run, out = tree.run()
    listing.show_inputs(run, "build")
    text = out.getvalue()
    assert text.startswith("build: ") and "(ansible; template packer/ami, Packer runs in .)" in text
    assert re.search(r"^ansible/roles/buildkite_agent/tasks/main\.yml\s+role buildkite_agent "
                     r"\(named in ansible/build_ami\.yaml\)$", text, re.M), text
    with pytest.raises(AmiError, match=r"^inputs --image='nope': no such image in amis.yaml "
                                       r"\(one of base, "):
        listing.show_inputs(run, "nope")
    with pytest.raises(AmiError, match=r"^inputs --image='wbe': no such image in amis.yaml: "
                                       r"did you mean web\?"):
        listing.show_inputs(run, "wbe")


def test_packer_is_handed_the_stage_the_effective_config_and_declared_variables(tree):
    run, _ = tree.run()
    variables = {"image": "web", "region": "eu-west-1", "source_ami": "ami-0000000b",
                 "not_declared": "x"}
    with invocation.prepared(run, "web", variables, sandbox=True, endpoint="http://e",
                             tags={"Image": "web", "ManagedBy": "amis-doit"},
                             env={"PATH": "/bin"}) as job:
        staged = {p.relative_to(job.root).as_posix() for p in job.root.rglob("*") if p.is_file()}
        hcl = {"packer/ami/ami.pkr.hcl", "packer/ami/variables.pkr.hcl"}
        assert set(run.checkout.manifest("web")) - hcl <= staged and not hcl & staged
        assert {"packer/ami/ami.hcl.pkr.json", "packer/ami/variables.hcl.pkr.json"} <= staged
        config = json.loads((job.root / "packer/ami/ami.hcl.pkr.json").read_text())
        source = config["source"][0]["amazon-ebs"]["ami"]
        assert source["communicator"] == "none" and source["custom_endpoint_ec2"] == "http://e"
        assert source["ami_regions"] == ["us-east-1"]
        argv = job.argv("packer", "build")
        given = json.loads(job.variables_file().read_text())
        assert "not_declared" not in given and given["image"] == "web"
        assert argv[-2] == f"-var-file={job.variables_file()}" and "-var" not in argv
        assert job.variables_file().stat().st_mode & 0o777 == 0o600
        assert argv[-1] == str(job.template) and job.env["ANSIBLE_CONFIG"]
        assert job.dropped == ("provisioner 1 (ansible)",)
    assert not job.root.exists()


def test_ansible_sees_only_the_stages_roles_and_collections(tree, tmp_path):
    home_role = tmp_path / "home/.ansible/roles/web_app"      # a role only on this machine
    home_role.mkdir(parents=True)
    run, _ = tree.run()
    with invocation.prepared(run, "web", {"image": "web"}, sandbox=False, endpoint=None,
                             tags={}, env={"PATH": "/bin", "HOME": str(tmp_path / "home"),
                                           "ANSIBLE_LIBRARY": "/x",
                                           "ANSIBLE_HASH_BEHAVIOUR": "merge"}) as job:
        assert "ANSIBLE_LIBRARY" not in job.env and "ANSIBLE_HASH_BEHAVIOUR" not in job.env
        for key in ("ANSIBLE_ROLES_PATH", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
            paths = job.env[key].split(":")
            assert paths and all(p.startswith(f"{job.root}/") for p in paths), (key, paths)
        assert job.env["ANSIBLE_ROLES_PATH"].split(":")[0] == str(job.root / ".amis-galaxy/roles")
        assert job.env["ANSIBLE_CONFIG"].startswith(f"{job.root}/")


def test_pkr_var_in_the_environment_is_refused(tree):
    run, _ = tree.run()
    with pytest.raises(AmiError, match="image web: PKR_VAR_region is set"):
        with invocation.prepared(run, "web", {}, sandbox=True, endpoint=None, tags={},
                                 env={"PKR_VAR_region": "us-west-2"}):
            pass


def candidate(ami: str, days_old: int, keep: list[str] | None = None) -> Candidate:
    return Candidate(ami=ami, region="eu-west-1", image="web",
                     created=datetime(2026, 11, 1, tzinfo=timezone.utc) - timedelta(days=days_old),
                     parent=None, snapshots=[], keep=keep or [])


def test_gc_deletes_the_oldest_unkept_first_and_at_most_the_bound():
    candidates = [candidate("ami-00000001", 5), candidate("ami-00000002", 50),
                  candidate("ami-00000003", 40, ["current in channel main"]),
                  candidate("ami-00000004", 30)]
    assert [c.ami for c in gc.doomed(candidates, 2)] == ["ami-00000002", "ami-00000004"]
    assert gc.doomed(candidates, 0) == []


def test_gc_finds_the_leftovers_of_a_killed_packer(tree, aws):
    aws.ec2.create_key_pair(KeyName="packer_5f0c-left-behind")
    aws.ec2.create_key_pair(KeyName="mine")
    aws.ec2.create_security_group(GroupName="packer_5f0c-left-behind", Description="x")
    run, _ = tree.run()
    now = datetime.now(timezone.utc) + timedelta(hours=1)
    found = gc.leftovers(run, 0.5, apply=False, now=now)
    assert "eu-west-1: key pair packer_5f0c-left-behind" in found
    assert "eu-west-1: security group packer_5f0c-left-behind" in found
    assert not [f for f in found if "mine" in f]
    assert gc.leftovers(run, 48, apply=False, now=now) == \
        ["eu-west-1: security group packer_5f0c-left-behind"]         # a key pair is young
    gc.leftovers(run, 0.5, apply=True, now=now)
    assert [k["KeyName"] for k in aws.ec2.describe_key_pairs()["KeyPairs"]] == ["mine"]
