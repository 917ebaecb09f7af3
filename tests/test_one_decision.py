"""One decision: plan, graph and pipeline say exactly what amis then does;
promotions hold; the graph is usable as printed; a run's state lives in
one object."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import yaml

from conftest import REGION, commit, copy_project, ok

ROLE = "ansible/roles/web_app/tasks/main.yml"


def planned(project) -> tuple[set[str], dict[str, str]]:
    """The images `doit plan` would build, and every row's status."""
    out = ok(project.doit("plan")).stdout
    rows = dict(re.findall(r"^(\w+)\s+(up to date|would reuse|would resolve|would rebuild|"
                           r"missing|AMI gone)\b", out, re.M))
    builds = {name for name, status in rows.items()
              if status in ("would rebuild", "missing", "AMI gone")}
    return builds, rows


def pipeline_steps(project) -> set[str]:
    ok(project.doit("pipeline"))
    steps = yaml.safe_load((project.path / ".amis/pipeline.yml").read_text())["steps"]
    return {s["key"][len("ami-"):] for s in steps if s.get("key", "").startswith("ami-")}


def edit_role(project, text="\n# edited\n"):
    path = project.path / ROLE
    path.write_text(path.read_text() + text)


@pytest.mark.parametrize("how", ["new branch", "uncommitted edit", "detached head"])
def test_plan_and_pipeline_say_what_amis_builds(project, how):
    ok(project.doit("amis"))
    project.reset_count()
    env = {}
    if how == "new branch":
        subprocess.run(["git", "checkout", "-q", "-b", "topic/one-role"], cwd=project.path,
                       check=True)
        edit_role(project)
        commit(project.path)
    elif how == "uncommitted edit":
        env = {"AMI_ALLOW_DIRTY": None}          # publishes to the `dirty` channel
        edit_role(project)
    else:
        edit_role(project)
        commit(project.path)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project.path, check=True,
                              capture_output=True, text=True).stdout.strip()
        subprocess.run(["git", "checkout", "-q", head], cwd=project.path, check=True)
    project.env.update({k: v for k, v in env.items() if v is not None})
    for k in [k for k, v in env.items() if v is None]:
        project.env.pop(k, None)
    builds, rows = planned(project)
    assert builds == {"web"}, rows
    assert rows["base"] in ("would reuse", "up to date")
    assert pipeline_steps(project) == {"web"}
    ok(project.doit("amis"))
    assert project.packer_builds() == ["web"]
    project.reset_count()
    assert planned(project)[0] == set() and pipeline_steps(project) == set()


def test_a_promotion_holds_until_the_channels_inputs_change(project, aws):
    ok(project.doit("amis"))
    subprocess.run(["git", "checkout", "-q", "-b", "candidate"], cwd=project.path, check=True)
    edit_role(project, "\n# candidate\n")
    commit(project.path)
    ok(project.doit("amis"))
    candidate = json.loads(aws.objects()["channels/candidate/web.json"])
    subprocess.run(["git", "checkout", "-q", "main"], cwd=project.path, check=True)
    ok(project.doit("promote", "-i", "web", "-f", "candidate", "-t", "main",
                    env={"AMI_ACTOR": "alice@example.com"}))
    project.reset_count()

    builds, rows = planned(project)
    assert builds == set()
    plan = ok(project.doit("plan")).stdout
    assert re.search(r"^web\s+up to date\s+" + candidate["amis"][REGION] +
                     r".*promoted from candidate by alice@example\.com at .*; holds until "
                     r"main's inputs change", plan, re.M), plan
    ok(project.doit("amis"))
    assert project.packer_builds() == []
    assert json.loads(aws.objects()["channels/main/web.json"])["amis"] == candidate["amis"]

    edit_role(project, "\n# main moves on\n")
    commit(project.path)
    plan = ok(project.doit("plan")).stdout
    assert re.search(r"^web\s+would rebuild.*inputs changed since the promotion from candidate",
                     plan, re.M), plan
    ok(project.doit("amis"))
    assert project.packer_builds() == ["web"]


def test_graph_prints_only_the_graph_offline_and_with_awkward_names(tmp_path):
    def renamed(root):
        graph = root / "amis.yaml"
        graph.write_text(graph.read_text().replace("  deploy:\n", "  end:\n"))
        (root / "ansible/deploy_ami.yaml").rename(root / "ansible/end_ami.yaml")
    from conftest import base_env
    repo = copy_project(tmp_path / "repo", tree=renamed)
    env = base_env(tmp_path)                        # no bucket, no endpoint, no sandbox
    mermaid = subprocess.run([sys.executable, "-m", "doit", "graph"], cwd=repo, env=env,
                             capture_output=True, text=True)
    assert mermaid.returncode == 0, mermaid.stderr
    lines = mermaid.stdout.splitlines()
    assert lines[0] == "graph TD" and lines[-1].startswith("%% offline (AMI_BUCKET is not set)")
    assert '  n3["end<br/>no AMI<br/>missing"]:::missing' in lines
    assert not [l for l in lines if re.match(r"^\s+end\b", l)]          # `end` only as a label
    assert "  n1 --> n3" in lines
    dot = subprocess.run([sys.executable, "-m", "doit", "graph", "--format", "dot"], cwd=repo,
                         env=env, capture_output=True, text=True)
    assert dot.stdout.startswith("digraph amis {\n") and ".  graph" in dot.stderr


def test_gc_hint_repeats_the_options_and_apply_ends_with_a_summary(project):
    ok(project.doit("amis"))
    (project.path / "ansible/base_ami.yaml").write_text(
        (project.path / "ansible/base_ami.yaml").read_text() + "\n")
    ok(project.doit("amis"))
    dry = ok(project.doit("gc", "--keep", "1", "--days", "0")).stdout
    hint = re.search(r"run `doit (gc[^`]*)` to delete them", dry)
    assert hint and hint[1] == "gc --keep 1 --days 0 --apply", dry
    applied = ok(project.doit(*hint[1].split())).stdout
    summary = applied.strip().splitlines()[-1]
    # five images' first builds, and web's copy in us-east-1
    assert re.fullmatch(r"deleted 6 AMI\(s\) and \d+ snapshot\(s\), removed 0 leftover\(s\); "
                        r"\d+ AMI\(s\) kept", summary), summary


def test_importing_the_creators_creates_nothing_and_installs_no_handler(tmp_path):
    repo = copy_project(tmp_path / "repo")
    code = ("import signal, pathlib, tasks.cli.creators as c\n"
            "creators = c.Creators(pathlib.Path('.'))\n"
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
            "assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (repo / ".amis").exists()


def test_no_module_of_tasks_holds_mutable_state():
    """Module-level names in tasks/ are constants: no dicts, lists or sets to fill."""
    import ast
    from pathlib import Path
    offenders = []
    for path in sorted(Path("tasks").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                value = node.value
                if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.DictComp, ast.ListComp,
                                      ast.SetComp)) or (
                        isinstance(value, ast.Call) and getattr(value.func, "attr",
                                                                getattr(value.func, "id", ""))
                        in {"dict", "list", "set", "Lock", "RLock", "Event", "defaultdict"}):
                    offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_a_new_channel_plans_to_reuse_every_image(project):
    """No record in the channel, none locally: the plan still finds main's builds
    by digest (the plan used to say "missing" for all of them)."""
    ok(project.doit("amis"))
    subprocess.run(["git", "checkout", "-q", "-b", "fresh"], cwd=project.path, check=True)
    (project.path / ".amis/records").rename(project.path / ".amis/records-old")
    out = ok(project.doit("plan")).stdout
    assert len(re.findall(r"would reuse", out)) == 5, out
