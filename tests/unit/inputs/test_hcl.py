"""HCL2 values in process: interpolations, file() calls and their paths,
what is known before the build, and Packer version constraints."""

from __future__ import annotations

import pytest

from tasks.core.versions import satisfies
from tasks.inputs.hcl.functions import file_calls
from tasks.inputs.hcl.scope import Scope
from tasks.inputs.hcl.syntax import literal, parts


def test_parts_split_literal_text_from_interpolations():
    assert list(parts('${path.root}/s/${var.arch}.sh')) == [
        ("path.root", True), ("/s/", False), ("var.arch", True), (".sh", False)]
    # $${ is a literal ${, and braces inside an interpolation's strings do not end it
    assert list(parts("$${HOME}/x")) == [("${HOME}/x", False)]
    assert list(parts('${lookup(m, "}")}!')) == [('lookup(m, "}")', True), ("!", False)]


@pytest.mark.parametrize("value, calls", [
    ('"${file("${path.root}/motd")}"', [("file", '"${path.root}/motd"')]),
    ('${base64encode(file(var.user_data))}', [("file", "var.user_data")]),
    ('${templatefile("a.tpl", { names = ["x", "y"] })}', [("templatefile", '"a.tpl"')]),
    ('${fileset(path.root, "conf/*.conf")}', [("fileset", "path.root")]),
    ('${fileexists("flag") ? "a" : "b"}', [("fileexists", '"flag"')]),
    ('${file ("spaced")}', [("file", '"spaced"')]),
    (["${file(\"a\")}", {"k": "${file(\"b\")}"}], [("file", '"a"'), ("file", '"b"')]),
    ({'(trimspace(file("/tmp/key")))': '"v"'}, [("file", '"/tmp/key"')]),      # an object key
    ('"echo see file(README) and profile(x)"', []),      # text, not a call
    ('"$${file(\"x\")}"', []),                           # $${ is a literal ${
])
def test_file_calls_are_found_in_expressions_at_any_depth(value, calls):
    assert list(file_calls(value)) == calls


def test_a_directive_is_an_expression_nothing_resolves():
    assert list(parts("%{if true}x%{endif}%%{y}")) == [
        ("%{if true}", True), ("x", False), ("%{endif}", True), ("%{y}", False)]


def _scope(**values):
    return Scope(values, {"scripts": '"${path.root}/scripts"', "loop": "${local.loop}"},
                     root="packer/hcl", cwd=".")


@pytest.mark.parametrize("raw, known", [
    ('"${local.scripts}/setup.sh"', "packer/hcl/scripts/setup.sh"),
    ('"${path.cwd}/${var.arch}.sh"', "./arm64.sh"),
    ("${var.arch}", "arm64"),
    ('"\\u00e9t\\u00e9.sh"', "été.sh"),
])
def test_known_before_the_build(raw, known):
    assert _scope(arch="arm64").value(raw)[0] == known


@pytest.mark.parametrize("raw, glob, why", [
    ('"${path.root}/${var.ami}.sh"', "packer/hcl/*.sh", "variable ami is only known during the build"),
    ('"${path.root}/${var.nope}.sh"', "packer/hcl/*.sh", "variable nope is not declared"),
    ('"${timestamp()}.log"', "*.log", "${timestamp()} is only known during the build"),
    ("${local.loop}", "*", "local loop is not known before the build"),
    ("${path.module}", "*", "path.module is not known before the build"),
    ('"%{if true}${path.root}%{endif}/x.sh"', "*packer/hcl*/x.sh",
     "%{if true} is only known during the build; %{endif} is only known during the build"),
])
def test_unknown_before_the_build_says_why_and_suggests_a_glob(raw, glob, why):
    assert _scope(ami=None).value(raw) == (None, glob, why)


@pytest.mark.parametrize("version, constraint, met", [
    ("1.6.6", ">= 1.7.0", False),
    ("1.6.6", ">= 1.5, < 2", True),
    ("1.8.3", "~> 1.8", True),
    ("2.0.0", "~> 1.8", False),
    ("1.9.0", "~> 1.8.1", False),
    ("1.8.4", "~> 1.8.1", True),
    ("1.6.6", "1.6.6", True),
    ("1.6.6", "!= 1.6.6", False),
    ("1.6.6", "newest", False),
])
def test_required_version_constraints(version, constraint, met):
    assert satisfies(version, constraint) is met


def test_only_literal_values_are_known():
    assert [literal(v) for v in ('"a/b.sh"', 3, True, '"${var.x}"', '"%{if x}y%{endif}"',
                                      ['"a"'], "${local.x}")] == [
        "a/b.sh", "3", "true", None, None, None, None]
