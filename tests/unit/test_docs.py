"""The documentation keeps up with the code: every setting the code reads is
in the configuration reference, every doit command the README shows names
a real task, the README stays short, and every relative link in the docs
leads somewhere. Pure: reads files, imports nothing of the project."""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
CONFIGURATION = DOCS / "reference" / "configuration.md"
README_MOST_LINES = 160

SETTING_RE = re.compile(r"AMI_[A-Z_]+")
# doit's own commands (doit help shows them): not tasks of dodo.py.
DOIT_COMMANDS = frozenset({"help", "list", "info", "clean", "forget", "ignore", "dumpdb",
                           "strace", "tabcompletion", "reset-dep", "run", "auto"})
# doit's own options that take a value, given before the task name (`doit -n 1 amis`).
DOIT_VALUE_OPTIONS = frozenset({"-n", "--process", "-P", "--parallel-type", "-f", "--file",
                                "-d", "--dir", "-k", "--seek-file", "--db-file", "--backend",
                                "--dep-file", "--check_file_uptodate", "-v", "--verbosity",
                                "-r", "--reporter", "-o", "--output-file", "--codec-cls"})
ASSIGNMENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=\S*")


# -- 1. every setting the code reads is documented ----------------------------

def settings_read(package: Path) -> set[str]:
    """Every ``AMI_*`` name that is a whole string literal in the package's
    code: ``env.get("AMI_BUCKET")``, ``("AMI_PREFIX", ...)``. A Python
    identifier such as the regex ``AMI_RE`` is no string, and a message that
    only mentions a setting (``"AMI_BUCKET is not set"``) is not a whole one."""
    found = set()
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and SETTING_RE.fullmatch(node.value):
                found.add(node.value)
    return found


def documented(text: str, name: str) -> bool:
    """``name`` appears as a word of its own (AMI_LOCK is not AMI_LOCK_TTL_SECONDS)."""
    return re.search(rf"(?<![A-Z0-9_]){re.escape(name)}(?![A-Z0-9_])", text) is not None


def test_settings_are_found_as_literals_only(tmp_path):
    (tmp_path / "a.py").write_text(
        'import re\nAMI_RE = re.compile("ami-[0-9a-f]+")\n'
        'def f(env):\n    return env.get("AMI_FOO"), "AMI_BAR is not set", f"AMI_BAZ={1}"\n'
        'PASSED = ("AMI_QUX",)\n')
    assert settings_read(tmp_path) == {"AMI_FOO", "AMI_QUX"}


def test_a_setting_is_documented_only_as_a_whole_word():
    assert documented("| `AMI_LOCK_TTL_SECONDS` | 300 |", "AMI_LOCK_TTL_SECONDS")
    assert not documented("| `AMI_LOCK_TTL_SECONDS` | 300 |", "AMI_LOCK")
    assert not documented("nothing here", "AMI_BUCKET")


def test_every_setting_the_code_reads_is_in_the_configuration_reference():
    names = settings_read(ROOT / "tasks")
    # The scan works: the settings every run reads are among what it found.
    assert {"AMI_BUCKET", "AMI_SANDBOX", "AMI_LOCK_TTL_SECONDS"} <= names, names
    text = CONFIGURATION.read_text(encoding="utf-8")
    missing = sorted(n for n in names if not documented(text, n))
    assert missing == [], f"{CONFIGURATION.relative_to(ROOT)} does not document {missing}"


# -- 2. every doit command in the README is a real task -----------------------

def fenced_blocks(text: str) -> list[str]:
    """The contents of the ``` fenced code blocks of a Markdown text."""
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, re.M | re.S)


def doit_commands(text: str) -> list[list[str]]:
    """Each ``doit ...`` command in the fenced blocks, as words: a line may
    chain commands (``&&``, ``||``, ``;``, ``|``), start with ``VAR=value``
    assignments, and call doit by a path (``.venv/bin/doit``)."""
    commands = []
    for block in fenced_blocks(text):
        for line in block.splitlines():
            line = line.split(" #", 1)[0].strip()
            if line.startswith("#"):
                continue
            for part in re.split(r"&&|\|\||;|\|", line):
                try:
                    words = shlex.split(part)
                except ValueError:
                    continue
                while words and ASSIGNMENT_RE.fullmatch(words[0]):
                    words = words[1:]
                if words and Path(words[0]).name == "doit":
                    commands.append(words[1:])
    return commands


def task_named(args: list[str]) -> str | None:
    """The task (or doit command) a doit command line runs: the first word
    that is not an option (nor an option's value), without its subtask:
    ``ami:web`` is task ``ami``. None for bare ``doit`` (the default task)."""
    words = iter(args)
    for word in words:
        if word in DOIT_VALUE_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word.split(":", 1)[0]
    return None


def dodo_tasks(dodo: Path) -> set[str]:
    """The tasks dodo.py defines: doit names a task after ``task_`` in its
    creator's name, verbatim (``task_sandbox_stop`` is ``sandbox_stop``)."""
    tree = ast.parse(dodo.read_text(encoding="utf-8"), str(dodo))
    names = set()
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else \
            [node] if isinstance(node, ast.FunctionDef) else []
        for target in targets:
            name = getattr(target, "id", getattr(target, "name", ""))
            if name.startswith("task_"):
                names.add(name[len("task_"):])
    return names


def test_doit_commands_are_read_from_fenced_blocks_only():
    text = ("Run `doit nothing` inline.\n\n```sh\nbash .ci/install && AMI_SANDBOX=1 "
            ".venv/bin/doit amis   # a comment: doit fake\nA=1 B=2 doit -n 1 ami:web\n"
            "doit graph --format dot | dot -Tpng > tree.png\n# doit commented\ndoit\n```\n")
    assert [task_named(c) for c in doit_commands(text)] == ["amis", "ami", "graph", None]


@pytest.mark.parametrize("args, task", [
    (["amis", "-n", "4"], "amis"), (["-n", "1", "amis"], "amis"), (["ami:web"], "ami"),
    (["--process=2", "plan"], "plan"), (["help", "plan"], "help"), ([], None)])
def test_the_task_is_the_first_word_that_is_no_option(args, task):
    assert task_named(args) == task


def test_dodo_tasks_are_named_as_doit_names_them(tmp_path):
    dodo = tmp_path / "dodo.py"
    dodo.write_text("task_pull = x.task_pull\ntask_sandbox_stop = x.y\n"
                    "def task_plan():\n    pass\nDOIT_CONFIG = {}\n")
    assert dodo_tasks(dodo) == {"pull", "sandbox_stop", "plan"}


def test_every_doit_command_in_the_readme_runs_a_real_task():
    known = dodo_tasks(ROOT / "dodo.py")
    assert {"amis", "ami", "plan", "sandbox_stop"} <= known, known
    commands = doit_commands(README.read_text(encoding="utf-8"))
    assert commands, "the README shows no doit command"
    unknown = sorted({f"doit {' '.join(c)}" for c in commands
                      if (task := task_named(c)) is not None
                      and task not in known and task not in DOIT_COMMANDS})
    assert unknown == [], f"README.md runs tasks dodo.py does not define: {unknown}"


# -- 3. the README is short, and links lead somewhere -------------------------

def test_the_readme_is_short():
    lines = len(README.read_text(encoding="utf-8").splitlines())
    assert lines <= README_MOST_LINES, \
        f"README.md has {lines} lines; move detail into docs/ (at most {README_MOST_LINES})"


LINK_RE = re.compile(r"\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_RE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.M)


def unfenced(text: str) -> str:
    """The text without its fenced code blocks (indented ones too)."""
    return re.sub(r"^[ \t]*(```|~~~).*?^[ \t]*\1[^\n]*$", "", text, flags=re.M | re.S)


def prose(text: str) -> str:
    """The text without code, fenced or inline, where a ``[x](y)`` is code,
    not a link."""
    return re.sub(r"(`+).*?\1", "", unfenced(text), flags=re.S)


def links(text: str) -> list[str]:
    body = prose(text)
    return LINK_RE.findall(body) + REFERENCE_RE.findall(body)


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings: lower case,
    punctuation dropped, spaces as hyphens, repeats numbered."""
    seen: dict[str, int] = {}
    out = set()
    for heading in re.findall(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", unfenced(text), re.M):
        slug = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
        slug = re.sub(r"[^\w\- ]", "", slug).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        out.add(slug if count == 0 else f"{slug}-{count}")
    return out


def broken_links(path: Path) -> list[str]:
    """The relative links of a Markdown file whose file (or heading) is not there."""
    broken = []
    for target in links(path.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("//"):
            continue                                    # https:, mailto:, ...
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and linked.is_file() \
                and anchor not in anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{target} (no such heading)")
    return broken


def markdown_files() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def test_links_are_read_from_prose_and_checked(tmp_path):
    (tmp_path / "there.md").write_text("# A heading, with `code`\n\n## Again\n## Again\n")
    page = tmp_path / "page.md"
    page.write_text("[ok](there.md) [ok](there.md#a-heading-with-code) [ok](there.md#again-1)\n"
                    "[gone](nowhere.md) [bad](there.md#nothing) [web](https://example.org/x)\n"
                    "![img](pic.png) `[code](not-a-link.md)`\n\n```\n[code](nor-this.md)\n```\n"
                    "[ok](#local) [bad](#elsewhere)\n\n## Local\n")
    assert broken_links(page) == ["nowhere.md (no such file)", "there.md#nothing (no such heading)",
                                  "pic.png (no such file)", "#elsewhere (no such heading)"]


def test_every_relative_link_in_the_docs_leads_somewhere():
    files = markdown_files()
    assert len(files) > 1 and all(f.exists() for f in files)
    broken = {str(f.relative_to(ROOT)): b for f in files if (b := broken_links(f))}
    assert broken == {}


# -- 4. the README's two set-up commands are what CI runs ---------------------

def section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_ci_runs_the_readmes_two_commands_as_written():
    readme = README.read_text(encoding="utf-8")
    ci = (ROOT / ".ci/run").read_text(encoding="utf-8").splitlines()
    for heading in ("A first build, with no AWS account", "Tests"):
        blocks = fenced_blocks(section(readme, heading))
        command = blocks[0].strip()
        assert "\n" not in command, f"README's {heading!r}: one command, one line"
        assert command in ci, f".ci/run does not run README's {heading!r} command {command!r}"


# -- 5. the architecture names every module -----------------------------------

def test_the_architecture_names_every_module():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    modules = [p.relative_to(ROOT / "tasks").as_posix()
               for p in sorted((ROOT / "tasks").rglob("*.py"))
               if p.name != "__init__.py" or p.parent.name == "fakes"]
    assert len(modules) > 60
    missing = [m for m in modules if f"`{m}`" not in text]
    assert missing == [], f"docs/architecture.md does not name {missing}"
    named = set(re.findall(r"^- `((?:cli|ops|state|adapters|inputs|core)/[\w/]+\.py)`", text, re.M))
    assert named <= set(modules), f"docs/architecture.md names modules that are gone: " \
                                  f"{sorted(named - set(modules))}"


def test_dodo_binds_every_task_creator():
    from tasks.cli.creators import Creators
    creators = {name[len("task_"):] for name in dir(Creators) if name.startswith("task_")}
    assert dodo_tasks(ROOT / "dodo.py") == creators
