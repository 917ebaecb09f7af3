"""The command line, read before doit reads it: every task's --help, and
mistakes as one line naming what the user typed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.cli.creators import EXAMPLES, OPTIONS, Creators
from tasks.cli.usage import check
from tasks.core.errors import MISTAKE, AmiError

ROOT = Path(__file__).resolve().parents[3]
DOCS = Creators(ROOT)._docs()
SUBTASKS = {"ami": ["centos", "base", "web", "worker"], "validate": ["base", "web", "lint"]}


def read(*args: str) -> str | None:
    return check(["doit", *args], OPTIONS, DOCS, EXAMPLES, SUBTASKS)


def mistake(*args: str) -> str:
    with pytest.raises(AmiError) as info:
        read(*args)
    assert info.value.code == MISTAKE
    message = str(info.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("task", sorted(OPTIONS))
def test_every_task_has_help_with_its_defaults_and_an_example(task):
    shown = read(task, "--help")
    assert shown is not None and shown.startswith(f"doit {task}")
    assert read("help", task) == shown                        # `doit help gc`, the same
    assert DOCS[task] and DOCS[task] in shown                 # its `doit list` line
    assert f"example:\n  {EXAMPLES[task]}" in shown
    for option in OPTIONS[task]:
        line = next(l for l in shown.splitlines() if f"--{option.long}" in l and "(default:" in l)
        assert option.help in line


def test_help_shows_the_real_defaults():
    shown = read("gc", "-h")
    assert re.search(r"^ +--keep KEEP +newest AMIs to keep per image and region \(default: 3\)$",
                     shown, re.M), shown
    assert "--apply" in shown and "(default: off)" in shown
    assert "(default: the tree's leaves, at most 8)" in read("amis", "--help")
    assert read("ami:web", "--help").startswith("doit ami:web")


def test_what_is_right_passes():
    for args in [("amis", "-n", "4", "-P", "thread", "-v"), ("amis", "-n4"), ("gc", "--apply",
                 "--keep", "5", "--days=1.5"), ("graph", "--format", "dot"), ("ami:web",),
                 ("-n", "2", "amis"), ("run", "plan"), ("list", "--all"), ("help", "list"),
                 ("promote", "-i", "web", "-f", "feature/x"), ("validate:lint",), ()]:
        assert read(*args) is None, args


@pytest.mark.parametrize("args, expected", [
    (("amsi",), "doit amsi: no such task: did you mean amis? (doit list shows every task)"),
    (("ami:wbe",), "doit ami:wbe: no such image in amis.yaml: did you mean ami:web?"),
    (("gc", "--aply"), "doit gc: unknown option --aply: did you mean --apply? (doit gc --help)"),
    (("gc", "--keep", "x"), "doit gc --keep 'x': needs a whole number"),
    (("gc", "--days", "soon"), "doit gc --days 'soon': needs a number"),
    (("gc", "--apply=yes"), "doit gc --apply: takes no value"),
    (("graph", "--format", "png"), "doit graph --format png: choose mermaid or dot"),
    (("graph", "-f", "dto"), "doit graph -f dto: choose mermaid or dot (did you mean dot?)"),
    (("amis", "-P", "process"), "doit amis -P process: choose thread"),
    (("plan", "--jobs"), "doit plan --jobs: needs a value"),
    (("ami:web", "-v"), "doit ami:web: unknown option -v; it takes no options"),
    (("explain", "--amy", "ami-1"), "doit explain: unknown option --amy: did you mean --ami?"),
])
def test_a_mistake_is_one_line_naming_what_was_typed(args, expected):
    assert mistake(*args).startswith(expected)
