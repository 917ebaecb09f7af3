"""Hypothesis: bad input raises the project's error type, or nothing."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from tasks.ops import cloud_init
from tasks.core.errors import AmiError
from tasks.core.graph import load_graph, parse_graph
from tasks.adapters.packer_output import Output, parse_artifact_ids
from tasks.core.records import Record

NAMES = st.sampled_from(["base", "web", "centos", "a/b", "..", "Web", "", "x" * 70, "ok_1"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20), NAMES)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(NAMES, st.text(max_size=8)), inner,
                                                 max_size=4)), max_leaves=20)
IMAGE = st.fixed_dictionaries({}, optional={
    "parent": NAMES, "template": st.one_of(NAMES, st.text(max_size=20)), "playbook": VALUES,
    "regions": VALUES, "vars": VALUES, "extra_inputs": VALUES, "var_files": VALUES,
    "unknown": VALUES})
GRAPH = st.fixed_dictionaries({}, optional={
    "region": st.one_of(st.just("eu-west-1"), SCALARS),
    "source": st.one_of(st.just({"name": "centos", "ami": "ami-12345678"}), VALUES),
    "images": st.one_of(st.dictionaries(NAMES, st.one_of(IMAGE, VALUES), max_size=5), VALUES),
})
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


def _tree(root: Path) -> Path:
    for name in ("base", "web", "ok_1"):
        for rel in (f"packer/{name}_ami.json", f"ansible/{name}_ami.yaml"):
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("{}")
    return root


@FUZZ
@given(data=st.one_of(GRAPH, VALUES))
def test_graph_structures(tmp_path_factory, data):
    root = _tree(tmp_path_factory.mktemp("g"))
    try:
        graph = parse_graph(data, root / "amis.yaml", root)
    except AmiError as err:
        assert err.problems and all("\n" not in p for p in err.problems)
    else:
        assert all(i.parent in graph.names for i in graph.images.values())


@FUZZ
@given(text=st.text(max_size=300))
def test_graph_file_text(tmp_path_factory, text):
    root = tmp_path_factory.mktemp("t")
    (root / "amis.yaml").write_text(text)
    try:
        load_graph(root)
    except AmiError:
        pass


@FUZZ
@given(data=GRAPH)
def test_graph_yaml_round_trip(tmp_path_factory, data):
    root = _tree(tmp_path_factory.mktemp("y"))
    (root / "amis.yaml").write_text(yaml.safe_dump(data))
    try:
        load_graph(root)
    except AmiError:
        pass


LINE = st.one_of(
    st.text(max_size=120),
    st.builds(lambda ts, tgt, typ, rest: ",".join([ts, tgt, typ, *rest]),
              st.one_of(st.just("1700000000"), st.text(max_size=5)),
              st.sampled_from(["", "amazon-ebs"]),
              st.sampled_from(["ui", "artifact", "error", "error-count", "version", ""]),
              st.lists(st.text(max_size=40), max_size=5)))


@settings(max_examples=1000, deadline=None)
@given(lines=st.lists(LINE, max_size=20))
def test_machine_readable_parser_never_crashes(lines):
    out = Output()
    for line in lines:
        shown = out.readable(line + "\n")
        assert all(isinstance(s, str) for s in shown)
    for region, ami in out.amis.items():
        assert ami.startswith("ami-")


@settings(max_examples=500, deadline=None)
@given(value=st.text(max_size=200))
def test_artifact_ids_never_crash(value):
    assert all(a.startswith("ami-") for a in parse_artifact_ids(value).values())


@settings(max_examples=500, deadline=None)
@given(body=st.one_of(st.binary(max_size=200), st.builds(
    lambda d: __import__("json").dumps(d), VALUES)))
def test_records(body):
    try:
        Record.from_json(body, "s3://b/k")
    except AmiError as err:
        assert str(err).startswith("s3://b/k: ")


@settings(max_examples=500, deadline=None)
@given(text=st.one_of(st.text(max_size=200), st.builds(lambda t: "#cloud-config\n" + t,
                                                        st.text(max_size=200))))
def test_cloud_config_check(text):
    try:
        cloud_init.check(text, "x.yaml")
    except AmiError:
        pass
