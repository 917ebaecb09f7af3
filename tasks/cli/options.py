"""doit's settings for this tree, from the graph and the command line."""

from __future__ import annotations

from typing import Any

from ..core.errors import AmiError
from ..core.graph import Graph
from ..core.text import did_you_mean

MOST_JOBS = 8


def default_jobs(graph: Graph | None) -> int:
    """Parallel builds by default, as many as the tree has leaves (Packer
    mostly waits on AWS, so cores do not limit it). 0 when there is no
    graph: the task creators then report why."""
    if graph is None or graph.width <= 1:
        return 0
    return min(graph.width, MOST_JOBS)


def _amis_options(argv: list[str]) -> list[str]:
    """What follows `amis` on the command line: its options."""
    args = argv[1:]
    return args[args.index("amis") + 1:] if "amis" in args else []


def verbose_flag(argv: list[str]) -> bool:
    """`doit amis -v` (or --verbose): Packer's whole output, live."""
    return any(arg in ("-v", "--verbose") for arg in _amis_options(argv))


def rebuild_option(argv: list[str]) -> list[str]:
    """`doit amis --rebuild web,worker` (or all): images to build again."""
    tail = _amis_options(argv)
    names: list[str] = []
    for i, arg in enumerate(tail):
        if arg == "--rebuild" and i + 1 < len(tail):
            names += tail[i + 1].split(",")
        elif arg.startswith("--rebuild="):
            names += arg[len("--rebuild="):].split(",")
    return [n.strip() for n in names if n.strip()]


def rebuilt(names: list[str], graph: Graph) -> set[str]:
    """The images ``--rebuild`` names (``all``: every one); an unknown name
    is a mistake, said in one line."""
    if "all" in names:
        return set(graph.images)
    unknown = [n for n in names if n not in graph.images]
    if unknown:
        raise AmiError(f"--rebuild {unknown[0]}: no such image in amis.yaml"
                       f"{did_you_mean(unknown[0], graph.images)} (one of "
                       f"{', '.join(graph.images)}, or all)")
    return set(names)


def parallel_options(argv: list[str]) -> dict[str, Any]:
    """Honour `doit amis -n 4 -P thread`. doit reads its own options only
    before the task names; options after `amis` are `amis`'s params (see
    task_amis), and are read here from the command line for DOIT_CONFIG.
    Options before the task name still win, as doit gives them precedence."""
    tail = _amis_options(argv)
    found: dict[str, Any] = {}
    for i, arg in enumerate(tail):
        value = tail[i + 1] if i + 1 < len(tail) else ""
        if arg in ("-n", "--process") and value.isdigit():
            found["num_process"] = int(value)
        elif arg.startswith("--process=") and arg[10:].isdigit():
            found["num_process"] = int(arg[10:])
        elif arg.startswith("-n") and arg[2:].isdigit():
            found["num_process"] = int(arg[2:])
    return found
