"""The layers of ``tasks/``, checked over the import graph (every
``import`` statement of every module, parsed, not run): no import upward,
``adapters`` and ``inputs`` apart, no cycle, doit only in ``cli``, the
environment read only in ``core/settings.py``, and every layer's
``__init__`` saying what it may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TASKS = Path(__file__).resolve().parents[2] / "tasks"
# Each layer and the layers it may import (besides itself).
MAY_IMPORT = {
    "cli": {"ops", "state", "adapters", "inputs", "core"},
    "ops": {"state", "adapters", "inputs", "core"},
    "state": {"adapters", "inputs", "core"},
    "adapters": {"core"},
    "inputs": {"core"},
    "core": set(),
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(TASKS.rglob("*.py")):
        parts = path.relative_to(TASKS.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(module imported, line) for every import of ``tasks`` code in a module."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((target, node.lineno))
            # `from . import x` imports the module x
            found += [(f"{target}.{a.name}", node.lineno) for a in node.names]
    return found


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "tasks" and parts[1] in MAY_IMPORT else None


MODULES = _modules()


def test_every_module_is_in_a_layer():
    loose = [m for m in MODULES if m != "tasks" and _layer(m) is None]
    assert not loose, f"modules outside the layers: {loose}"


@pytest.mark.parametrize("name", [m for m in MODULES if _layer(m)])
def test_no_import_upward_or_across(name):
    here = _layer(name)
    for target, line in _imports(name, MODULES[name]):
        there = _layer(target)
        if there is None or there == here:
            continue
        assert there in MAY_IMPORT[here], \
            f"{MODULES[name].relative_to(TASKS.parent)}:{line}: {here} imports {target} ({there})"


def test_no_import_cycles():
    graph = {name: {t for t, _ in _imports(name, path) if t in MODULES and t != name}
             for name, path in MODULES.items()}
    # A package's __init__ importing nothing is what lets a module import its siblings.
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_doit_is_imported_only_in_cli():
    for name, path in MODULES.items():
        if _layer(name) == "cli":
            continue
        for target, line in _imports(name, path):
            assert target.split(".")[0] != "doit", f"{path}:{line}: imports {target}"


def test_the_environment_is_read_only_in_settings():
    allowed = TASKS / "core" / "settings.py"
    # Copied into the acceptance test run and loaded by its pytest: another
    # program, whose environment the run hands it.
    elsewhere = TASKS / "adapters" / "testinfra_plugin.py"
    for path in MODULES.values():
        if path in (allowed, elsewhere):
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") \
                    and isinstance(node.value, ast.Name) and node.value.id == "os":
                pytest.fail(f"{path}:{node.lineno}: reads os.{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module == "os" \
                    and any(a.name in ("environ", "getenv") for a in node.names):
                pytest.fail(f"{path}:{node.lineno}: imports os.environ")


@pytest.mark.parametrize("layer", sorted(MAY_IMPORT))
def test_each_layer_says_what_it_may_import(layer):
    doc = ast.get_docstring(ast.parse((TASKS / layer / "__init__.py").read_text())) or ""
    assert "May import:" in doc, f"tasks/{layer}/__init__.py does not say what it may import"
    for other in MAY_IMPORT[layer]:
        assert f"``{other}``" in doc, f"tasks/{layer}/__init__.py does not name {other}"


def test_no_module_of_tasks_holds_mutable_state():
    """Module-level names in tasks/ are constants: no dicts, lists or sets to fill."""
    offenders = []
    for path in MODULES.values():
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


# Only these adapters start programs: Packer's builds, the tool runner, the emulator.
STARTS_PROGRAMS = {"tasks.adapters.packer", "tasks.adapters.tools", "tasks.adapters.emulator",
                   "tasks.adapters.testrun"}


def test_programs_are_started_only_by_the_adapters_that_run_them():
    for name, path in MODULES.items():
        for target, line in _imports(name, path):
            if target.split(".")[0] in ("subprocess", "multiprocessing"):
                assert name in STARTS_PROGRAMS, \
                    f"{path}:{line}: imports {target}: run programs through adapters.tools.Tools"


def _aws_operations() -> set[str]:
    """Every EC2, Auto Scaling and SSM operation, as boto3 names it and as AWS
    does (KMS's are left out: its Sign and Verify are also words the
    commands use)."""
    from botocore.loaders import Loader
    from botocore import xform_name
    names = set()
    for service in ("ec2", "autoscaling", "ssm"):
        for op in Loader().load_service_model(service, "service-2")["operations"]:
            names |= {op, xform_name(op)}
    return names


def test_aws_operations_are_named_only_in_the_adapters():
    """Each port names its AWS operations in its adapter (and its fake); the
    rest of the code asks the port's typed methods."""
    operations = _aws_operations()
    assert {"describe_images", "DeregisterImage", "get_parameter"} <= operations
    for name, path in MODULES.items():
        if _layer(name) == "adapters":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                assert node.value not in operations, \
                    f"{path}:{node.lineno}: names the AWS operation {node.value!r}"


def test_no_command_is_handed_the_whole_run():
    """ops and state take the services they use; only cli holds the
    composition root (cli.compose.App)."""
    for name, path in MODULES.items():
        if _layer(name) not in ("ops", "state"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in node.args.args + node.args.kwonlyargs:
                    annotation = ast.unparse(arg.annotation) if arg.annotation else ""
                    assert arg.arg not in ("run", "app") and "App" not in annotation, \
                        f"{path}:{node.lineno}: {node.name} takes the whole run ({arg.arg})"
