"""The image tree as Mermaid or Graphviz DOT, each image coloured by its
plan status."""

from __future__ import annotations

from types import MappingProxyType
from typing import TYPE_CHECKING

from ..core.decision import TO_BUILD, TO_RESOLVE, TO_REUSE, UP_TO_DATE
from ..core.graph import Graph

if TYPE_CHECKING:
    from .plan import Row

# status (or, for a build, why: nothing to keep) -> (class name, fill, stroke)
STYLES = MappingProxyType({
    UP_TO_DATE: ("uptodate", "#d4edda", "#28a745"),
    TO_REUSE: ("reuse", "#d1ecf1", "#17a2b8"),
    TO_RESOLVE: ("reuse", "#d1ecf1", "#17a2b8"),
    TO_BUILD: ("build", "#fff3cd", "#d39e00"),
    "missing": ("missing", "#f8d7da", "#dc3545"),
    "gone": ("gone", "#f8d7da", "#dc3545"),
})


def _style(row: Row) -> tuple[str, str, str]:
    return STYLES[row.cause if row.cause in ("missing", "gone") else row.status]
FORMATS = ("mermaid", "dot")


def _edges(graph: Graph) -> list[tuple[str, str]]:
    return [(image.parent, name) for name, image in graph.images.items()]


def mermaid(graph: Graph, rows: list[Row]) -> str:
    # Node ids are n0, n1, ...: an image may be called `end` or `graph`,
    # which are Mermaid keywords; its name is only ever a quoted label.
    ids = {name: f"n{i}" for i, name in enumerate(graph.names)}
    lines = ["graph TD"]
    for row in rows:
        label = f"{row.image}<br/>{row.ami or 'no AMI'}<br/>{row.status}"
        lines.append(f'  {ids[row.image]}["{label}"]:::{_style(row)[0]}')
    lines += [f"  {ids[parent]} --> {ids[child]}" for parent, child in _edges(graph)]
    lines += [f"  classDef {cls} fill:{fill},stroke:{stroke};"
              for cls, fill, stroke in sorted(set(STYLES.values()))]
    return "\n".join(lines)


def dot(graph: Graph, rows: list[Row]) -> str:
    lines = ["digraph amis {", "  rankdir=TB;", '  node [shape=box, style="rounded,filled"];']
    for row in rows:
        _, fill, stroke = _style(row)
        label = f"{row.image}\\n{row.ami or 'no AMI'}\\n{row.status}"
        lines.append(f'  "{row.image}" [label="{label}", fillcolor="{fill}", color="{stroke}"];')
    lines += [f'  "{parent}" -> "{child}";' for parent, child in _edges(graph)]
    lines.append("}")
    return "\n".join(lines)


def render(fmt: str, graph: Graph, rows: list[Row]) -> str:
    return {"mermaid": mermaid, "dot": dot}[fmt](graph, rows)
