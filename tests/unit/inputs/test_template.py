"""A template as the tool sees it: which values are sensitive, which
variables it declares."""

from __future__ import annotations


def test_sensitive_values_resolve_env_defaults():
    from tasks.inputs.template import Template, sensitive_values
    template = Template(path="t.json", format="json", files=("t.json",), dir=".",
                        variables={"k": "{{env `K`}}", "h": '${env("H")}', "plain": "p",
                                   "other": "o"},
                        sensitive=("k", "h", "plain", "missing"), blocks=())
    assert sensitive_values(template, {"plain": "given"}, {"K": "from-env", "H": "hcl"}) == \
        ["from-env", "hcl", "given"]
