"""What the seeing commands print, from rows of the decision: the plan with
durations and the critical path, the graph as Mermaid and DOT, the
Buildkite annotation and dynamic pipeline. Pure: no AWS, no subprocess."""

from __future__ import annotations

import yaml

from support.project import ROOT
from tasks.core.graph import load_graph
from tasks.core.settings import Buildkite
from tasks.ops import buildkite, diagram, plan
from tasks.ops.plan import Row
from tasks.core.outcome import Outcome
from tasks.state.reports import Report

GRAPH = load_graph(ROOT)


def rows(builds: dict[str, float | None]) -> list[Row]:
    """Every node up to date, except those in ``builds`` (name -> last duration)."""
    return [Row(name, "build" if name in builds else "up to date",
                "changed x" if name in builds else "digest 0123", f"ami-{i:08x}",
                name in builds, builds.get(name), works=name in builds)
            for i, name in enumerate(GRAPH.names)]


def test_the_plan_estimates_one_at_a_time_and_along_the_critical_path():
    text = plan.render(rows({"base": 60, "web": 120, "worker": 30, "build": 30, "deploy": 30}),
                       GRAPH, jobs=4)
    assert "5 to build: about 4m30s one at a time, 3m00s with -n 4 (critical path base -> " \
           "web: 3m00s)" in text
    assert plan.estimate(rows({"web": 10, "base": None}), GRAPH)[3] == 1      # unknown durations


def test_the_plan_says_when_nothing_builds_and_when_it_is_offline():
    text = plan.render(rows({}), GRAPH, jobs=1, offline_reason="cannot reach AWS")
    assert "nothing to build" in text
    assert text.splitlines()[-1] == ("offline (cannot reach AWS): AMI existence, source "
                                     "filters and earlier builds by digest were not checked")
    never = plan.render(rows({"web": None}), GRAPH, jobs=1)
    assert "1 to build; no earlier builds, so no expected duration" in never


def test_the_graph_in_mermaid_and_dot_follows_the_tree_coloured_by_status():
    shown = rows({"web": 10})
    mermaid = diagram.render("mermaid", GRAPH, shown)
    assert mermaid.startswith("graph TD\n") and "classDef build fill:#fff3cd" in mermaid
    assert ':::build' in next(line for line in mermaid.splitlines() if '["web<br/>' in line)
    dot = diagram.render("dot", GRAPH, shown)
    assert dot.startswith("digraph amis {") and '"base" -> "web";' in dot


def test_the_annotation_is_a_table_and_a_graph_styled_by_failure():
    reports = {"web": Report("web", Outcome.BUILT, "ami-0000000a", 12.0),
               "base": Report("base", Outcome.FAILED, "-", 3.0, "image base: Packer | exited 1")}
    markdown, style = buildkite.annotation(GRAPH, reports, rows({}))
    assert style == "error" and "```mermaid" in markdown
    assert "| web | built | `ami-0000000a` | 12s |  |" in markdown
    assert "| base | failed | `ami-00000001` | 3s | image base: Packer \\| exited 1 |" in markdown
    assert buildkite.annotation(GRAPH, {}, rows({}))[1] == "success"


def test_the_dynamic_pipeline_has_a_step_per_build_on_the_upload_queue():
    steps = yaml.safe_load(buildkite.pipeline(
        GRAPH, rows({"base": 1, "web": 1}), Buildkite(queue="amis", pipeline_slug="amis-prod"),
        {"AMI_BUCKET": "acme", "AWS_SECRET_ACCESS_KEY": "never passed on"}))
    assert steps["env"] == {"AMI_BUCKET": "acme"}
    base, web = steps["steps"]
    assert (base["key"], web["key"], web["depends_on"]) == ("ami-base", "ami-web", "ami-base")
    assert web["agents"] == {"queue": "amis"}
    assert web["concurrency_group"] == "amis-prod/amis/web"
    nothing = yaml.safe_load(buildkite.pipeline(GRAPH, rows({}), Buildkite(), {}))["steps"]
    assert len(nothing) == 1 and "up to date" in nothing[0]["label"]


def test_values_passed_to_the_pipeline_are_never_interpolated_by_buildkite():
    # Buildkite expands $NAME and ${...} in an uploaded pipeline; $$ is a literal "$".
    steps = yaml.safe_load(buildkite.pipeline(
        GRAPH, rows({"base": 1}), Buildkite(),
        {"AMI_DEFAULT_BRANCH": "release$1", "AMI_PREFIX": "teams/${BUILDKITE_AGENT_ACCESS_TOKEN}"}))
    assert steps["env"] == {"AMI_DEFAULT_BRANCH": "release$$1",
                            "AMI_PREFIX": "teams/$${BUILDKITE_AGENT_ACCESS_TOKEN}"}


def test_an_image_to_test_gets_a_step_and_its_children_wait_for_it():
    testing = [Row(name, "test" if name == "base" else "build" if name == "web" else "up to date",
                   "tests changed", f"ami-{i:08x}", name == "web", None,
                   works=name in ("base", "web"))
               for i, name in enumerate(GRAPH.names)]
    steps = yaml.safe_load(buildkite.pipeline(GRAPH, testing, Buildkite(), {}))["steps"]
    assert [s["key"] for s in steps] == ["ami-base", "ami-web"]
    assert steps[1]["depends_on"] == "ami-base"
    assert "1 to test, on AMIs built earlier (no Packer): base" in plan.render(testing, GRAPH, 2)
