"""The operating commands in process, on the fakes: explain follows records
back to the source, promote checks every image before moving any, inputs
lists each input and why, gc finds Packer's leftovers, and Packer is
handed exactly the image's stage."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import pytest

from tasks.core import channels
from tasks.core.errors import AmiError
from tasks.core.records import Record
from tasks.ops import explain, listing


def published(tree, *records: Record, channel: str = "main") -> None:
    app, _ = tree.run()
    for r in records:
        app.registry.publish(r, channel, new_build=True)


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
    published(tree, CENTOS, BASE, WEB)
    app, _ = tree.run()
    lines = explain.explain(app.registry, app.settings.records, "ami-0000000d").splitlines()
    assert lines[0] == ("ami-0000000d  web: built 2026-11-21T10:00:00+00:00 from main @ "
                        "eeeeeeeeeeee (dirty), digest dddddddddddd")
    assert lines[1].startswith("  └ ami-0000000b  base: built ")
    assert lines[2] == "    └ ami-bb9a6bc2  centos: source image (pinned)"
    with pytest.raises(AmiError, match="ami-12345678: no record of this project built it"):
        explain.explain(app.registry, app.settings.records, "ami-12345678")
    with pytest.raises(AmiError, match="explain --ami='web': not an AMI id"):
        explain.explain(app.registry, app.settings.records, "web")


def test_promote_checks_every_image_before_moving_any(tree):
    ami = tree.ec2.add_ami("eu-west-1", name="base-x").id
    base = Record(**{**BASE.__dict__, "amis": {"eu-west-1": ami}})
    published(tree, base, channel="candidate")        # web has no record there
    before = dict(tree.store.objects)
    app, _ = tree.run()
    with pytest.raises(AmiError, match="channel candidate has no record of centos"):
        app.promoter.promote("all", "candidate", "main")
    assert tree.store.objects == before
    app.promoter.promote("base", "candidate", "main")
    now = json.loads(tree.store.objects["channels/main/base.json"])
    assert now["amis"] == {"eu-west-1": ami} and now["promotion"]["from_channel"] == "candidate"
    with pytest.raises(AmiError, match=r"promote --to: give a channel or a branch name"):
        app.promoter.promote("base", "candidate", "")
    app, out = tree.run()
    app.promoter.promote("base", "candidate", "Main")      # a branch, not the main channel
    channel = channels.channel_for_branch("Main")
    assert f"promote --to Main: branch Main publishes to channel {channel}" in out.getvalue()
    assert channel != "main" and f"channels/{channel}/base.json" in tree.store.objects


def test_a_promotion_on_a_machine_that_names_no_user_is_by_the_aws_caller(tree):
    ami = tree.ec2.add_ami("eu-west-1", name="base-x").id
    published(tree, Record(**{**BASE.__dict__, "amis": {"eu-west-1": ami}}), channel="candidate")
    tree.git.email = None
    app, _ = tree.run({"USER": None, "AMI_ACTOR": None, "BUILDKITE": None,
                       "BUILDKITE_BUILD_CREATOR": None})
    app.promoter.promote("base", "candidate", "main")
    promoted = json.loads(tree.store.objects["channels/main/base.json"])["promotion"]
    assert promoted["by"] == tree.identity.arn


def test_promoting_twice_says_it_is_already_there_and_writes_nothing(tree):
    ami = tree.ec2.add_ami("eu-west-1", name="base-x").id
    published(tree, Record(**{**BASE.__dict__, "amis": {"eu-west-1": ami}}), channel="candidate")
    app, out = tree.run()
    app.promoter.promote("base", "candidate", "main")
    assert f"channel main: nothing -> {ami} (from candidate" in out.getvalue()
    before = dict(tree.store.objects)
    app, out = tree.run()
    app.promoter.promote("base", "candidate", "main")
    assert out.getvalue().strip() == (f"[base] channel main: already at {ami}, as channel "
                                      "candidate is: nothing to promote")
    assert tree.store.objects == before


def test_promoting_an_older_build_over_a_newer_one_says_so(tree):
    old = tree.ec2.add_ami("eu-west-1", name="base-old").id
    new = tree.ec2.add_ami("eu-west-1", name="base-new").id
    published(tree, Record(**{**BASE.__dict__, "amis": {"eu-west-1": old},
                              "build_finished": "2026-11-20T00:00:00+00:00",
                              "git": {"commit": "a" * 40}}), channel="feature")
    published(tree, Record(**{**BASE.__dict__, "amis": {"eu-west-1": new}, "digest": "e" * 64,
                              "build_finished": "2026-11-25T00:00:00+00:00",
                              "git": {"commit": "b" * 40}}), channel="main")
    app, out = tree.run()
    app.promoter.promote("base", "feature", "main")
    assert (f"[base] note: channel main's {new} was built later (2026-11-25T00:00:00+00:00, "
            f"commit bbbbbbbbbbbb) than {old} (2026-11-20T00:00:00+00:00, commit aaaaaaaaaaaa): "
            "main moves back to older inputs") in out.getvalue()
    assert f"channel main: {new} -> {old}" in out.getvalue()


def test_inputs_lists_each_input_and_what_brought_it_in(tree):
    app, out = tree.run()
    listing.show_inputs(app.graph, app.checkout, app.say, "build")
    text = out.getvalue()
    assert text.startswith("build: ") and "(ansible; template packer/ami, Packer runs in .)" in text
    assert re.search(r"^ansible/roles/buildkite_agent/tasks/main\.yml\s+role buildkite_agent "
                     r"\(named in ansible/build_ami\.yaml\)$", text, re.M), text
    with pytest.raises(AmiError, match=r"^inputs --image='nope': no such image in amis.yaml "
                                       r"\(one of base, "):
        listing.show_inputs(app.graph, app.checkout, app.say, "nope")
    with pytest.raises(AmiError, match=r"^inputs --image='wbe': no such image in amis.yaml: "
                                       r"did you mean web\?"):
        listing.show_inputs(app.graph, app.checkout, app.say, "wbe")


def test_inputs_names_the_host_files_and_environment_an_image_declares(tree, tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("k\n")
    text = (tree.path / "amis.yaml").read_text()
    tree.write("amis.yaml", text.replace("  web:\n    parent: base\n",
                                         f"  web:\n    parent: base\n    host_inputs: [{key}]\n"
                                         "    env_inputs: [PIP_INDEX]\n"))
    app, out = tree.run()
    listing.show_inputs(app.graph, app.checkout, app.say, "web")
    assert f"web: also build host files, their hashes in the digest: {key}" in out.getvalue()
    assert "web: also environment variables, their hashes in the digest: PIP_INDEX" in \
        out.getvalue()


def test_packer_is_handed_the_stage_the_effective_config_and_declared_variables(tree):
    app, _ = tree.run()
    variables = {"image": "web", "region": "eu-west-1", "source_ami": "ami-0000000b",
                 "not_declared": "x"}
    with app.stager.prepared("web", variables, sandbox=True, endpoint="http://e",
                             tags={"Image": "web", "ManagedBy": "amis-doit"},
                             env={"PATH": "/bin"}) as job:
        staged = {p.relative_to(job.root).as_posix() for p in job.root.rglob("*") if p.is_file()}
        hcl = {"packer/ami/ami.pkr.hcl", "packer/ami/variables.pkr.hcl"}
        assert set(app.checkout.manifest("web")) - hcl <= staged and not hcl & staged
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
    app, _ = tree.run()
    with app.stager.prepared("web", {"image": "web"}, sandbox=False, endpoint=None,
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
    app, _ = tree.run()
    with pytest.raises(AmiError, match="image web: PKR_VAR_region is set"):
        with app.stager.prepared("web", {}, sandbox=True, endpoint=None, tags={},
                                 env={"PKR_VAR_region": "us-west-2"}):
            pass


def test_gc_finds_the_leftovers_of_a_killed_packer(tree):
    tree.ec2.add_key_pair("eu-west-1", "packer_5f0c-left-behind")
    tree.ec2.add_key_pair("eu-west-1", "mine")
    tree.ec2.add_security_group("eu-west-1", "packer_5f0c-left-behind")
    app, _ = tree.run()
    now = datetime.now(timezone.utc) + timedelta(hours=1)
    found = app.collector.leftovers(0.5, apply=False, now=now)
    assert "eu-west-1: key pair packer_5f0c-left-behind" in found
    assert "eu-west-1: security group packer_5f0c-left-behind" in found
    assert not [f for f in found if "mine" in f]
    assert app.collector.leftovers(48, apply=False, now=now) == \
        ["eu-west-1: security group packer_5f0c-left-behind"]         # a key pair is young
    app.collector.leftovers(0.5, apply=True, now=now)
    assert [k.name for k in tree.ec2.keys["eu-west-1"]] == ["mine"]
    assert tree.ec2.groups["eu-west-1"] == []
