"""One decision, through doit in process: plan, graph and pipeline say
exactly what amis then does, on a new branch, with an uncommitted edit or
a detached HEAD; promotions hold until the channel's inputs change."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml

from support.inproc import next_second
from support.project import REGION, commit, ok

ROLE = "ansible/roles/web_app/tasks/main.yml"


def planned(tree) -> tuple[set[str], dict[str, str]]:
    """The images `doit plan` would build, and every row's status."""
    out = ok(tree.doit("plan")).stdout
    rows = dict(re.findall(r"^(\w+)\s+(up to date|reuse|resolve|build)\b", out, re.M))
    builds = {name for name, status in rows.items() if status == "build"}
    return builds, rows


def pipeline_steps(tree) -> set[str]:
    ok(tree.doit("pipeline"))
    steps = yaml.safe_load((tree.path / ".amis/pipeline.yml").read_text())["steps"]
    return {s["key"][len("ami-"):] for s in steps if s.get("key", "").startswith("ami-")}


def edit_role(tree, text="\n# edited\n"):
    path = tree.path / ROLE
    path.write_text(path.read_text() + text)


@pytest.mark.parametrize("how", ["new branch", "uncommitted edit", "detached head"])
def test_plan_and_pipeline_say_what_amis_builds(tree, how):
    ok(tree.doit("amis"))
    tree.reset_count()
    env = {}
    if how == "new branch":
        subprocess.run(["git", "checkout", "-q", "-b", "topic/one-role"], cwd=tree.path,
                       check=True)
        edit_role(tree)
        commit(tree.path)
    elif how == "uncommitted edit":
        env = {"AMI_ALLOW_DIRTY": None}          # publishes to the `dirty` channel
        edit_role(tree)
    else:
        edit_role(tree)
        commit(tree.path)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree.path, check=True,
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(["git", "checkout", "-q", head], cwd=tree.path, check=True)
    tree.env.update({k: v for k, v in env.items() if v is not None})
    for k in [k for k, v in env.items() if v is None]:
        tree.env.pop(k, None)
    builds, rows = planned(tree)
    assert builds == {"web"}, rows
    assert rows["base"] in ("reuse", "up to date")
    assert pipeline_steps(tree) == {"web"}
    ok(tree.doit("amis"))
    assert tree.packer_builds() == ["web"]
    tree.reset_count()
    assert planned(tree)[0] == set() and pipeline_steps(tree) == set()


def test_a_promotion_holds_until_the_channels_inputs_change(tree, aws):
    ok(tree.doit("amis"))
    subprocess.run(["git", "checkout", "-q", "-b", "candidate"], cwd=tree.path, check=True)
    edit_role(tree, "\n# candidate\n")
    commit(tree.path)
    ok(tree.doit("amis"))
    candidate = json.loads(aws.objects()["channels/candidate/web.json"])
    subprocess.run(["git", "checkout", "-q", "main"], cwd=tree.path, check=True)
    ok(tree.doit("promote", "-i", "web", "-f", "candidate", "-t", "main",
                    env={"AMI_ACTOR": "alice@example.com"}))
    tree.reset_count()

    builds, rows = planned(tree)
    assert builds == set()
    plan = ok(tree.doit("plan")).stdout
    assert re.search(r"^web\s+up to date\s+" + candidate["amis"][REGION] +
                     r".*promoted from candidate by alice@example\.com at .*; holds until "
                     r"main's inputs change", plan, re.M), plan
    ok(tree.doit("amis"))
    assert tree.packer_builds() == []
    assert json.loads(aws.objects()["channels/main/web.json"])["amis"] == candidate["amis"]

    edit_role(tree, "\n# main moves on\n")
    commit(tree.path)
    plan = ok(tree.doit("plan")).stdout
    assert re.search(r"^web\s+build\s.*changed \S+ since the promotion from candidate",
                     plan, re.M), plan
    ok(tree.doit("amis"))
    assert tree.packer_builds() == ["web"]


def test_gc_hint_repeats_the_options_and_apply_ends_with_a_summary(tree):
    ok(tree.doit("amis"))
    (tree.path / "ansible/base_ami.yaml").write_text(
        (tree.path / "ansible/base_ami.yaml").read_text() + "\n")
    next_second()
    ok(tree.doit("amis"))
    dry = ok(tree.doit("gc", "--keep", "1", "--days", "0")).stdout
    hint = re.search(r"run `doit (gc[^`]*)` to delete them", dry)
    assert hint and hint[1] == "gc --keep 1 --days 0 --apply", dry
    applied = ok(tree.doit(*hint[1].split())).stdout
    summary = applied.strip().splitlines()[-1]
    # five images' first builds, and web's copy in us-east-1
    assert re.fullmatch(r"deleted 6 AMI\(s\) and \d+ snapshot\(s\), removed 0 leftover\(s\); "
                        r"\d+ AMI\(s\) kept", summary), summary


def test_a_new_channel_plans_to_reuse_every_image(tree):
    """No record in the channel, none locally: the plan still finds main's builds
    by digest (the plan used to say "missing" for all of them)."""
    ok(tree.doit("amis"))
    subprocess.run(["git", "checkout", "-q", "-b", "fresh"], cwd=tree.path, check=True)
    (tree.path / ".amis/records").rename(tree.path / ".amis/records-old")
    out = ok(tree.doit("plan")).stdout
    assert len(re.findall(r"reuse", out)) == 5, out


@pytest.mark.parametrize("how", ["new branch", "uncommitted edit"])
def test_plan_on_a_new_channel_names_what_changed_since_main(tree, how):
    """A branch's (or a dirty tree's) channel has no record of web yet: plan
    compares web with main's record, names the changed file and expects
    main's duration, instead of "never built" and "?"."""
    ok(tree.doit("amis"))
    if how == "new branch":
        subprocess.run(["git", "checkout", "-q", "-b", "feature/web-limits"], cwd=tree.path,
                       check=True)
        edit_role(tree)
        commit(tree.path)
    else:
        tree.env.pop("AMI_ALLOW_DIRTY", None)            # publishes to `dirty`
        edit_role(tree)
    out = ok(tree.doit("plan")).stdout
    web = next(line for line in out.splitlines() if line.startswith("web "))
    assert re.search(r"^web\s+build\s+-\s+\d+s\s+changed ansible/roles/web_app/\S+ since main$",
                     web), out
    assert "never built" not in out and "?" not in web
