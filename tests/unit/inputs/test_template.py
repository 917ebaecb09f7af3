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


def test_a_json_template_is_given_the_variables_its_var_files_set():
    # image-builder's shape: source_ami only in a var file, read with {{user `source_ami`}}
    from tasks.inputs.template import Template, declared
    given = {"source_ami": "ami-0parent", "image": "x", "digest": "d"}
    for fmt, expected in (("json", {"source_ami": "ami-0parent", "image": "x"}),
                          ("hcl2", {"image": "x"})):
        template = Template(path="t", format=fmt, files=("t",), dir=".",
                            variables={"image": None}, sensitive=(), blocks=())
        assert declared(template, given, {"source_ami": "ami-0000"}) == expected


def test_secret_store_reads_are_found_in_either_format():
    from tasks.inputs.template import Template
    template = Template(path="t.json", format="json", files=("t.json",), dir=".",
                        variables={}, sensitive=(), blocks=(),
                        data={"variables": {"k": "{{ vault `secret/x` `key` }}",
                                            "s": "{{aws_secretsmanager `db` `pw`}}",
                                            "c": '{{ consul_key "app/k" }}',
                                            "e": '{{ env "GREETING" }}'}})
    assert template.secret_stores() == ["aws_secretsmanager", "consul_key", "vault"]
