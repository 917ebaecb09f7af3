"""``doit inputs``: every input of an image, and the reference that brought it in."""

from __future__ import annotations

from typing import Callable

from ..core.errors import AmiError
from ..core.graph import Graph
from ..core.text import did_you_mean, table
from ..state.checkout import Checkout


def show_inputs(graph: Graph, checkout: Checkout, say: Callable[[str], None],
                image: str) -> None:
    names = list(graph.images) if image in ("", "all") else [image]
    for name in names:
        if name not in graph.images:
            raise AmiError(f"inputs --image={name!r}: no such image in amis.yaml"
                           f"{did_you_mean(name, graph.images)} "
                           f"(one of {', '.join(graph.images)})")
        found = checkout.inputs()[name]
        say(f"{name}: {len(found.files)} inputs ({found.kind}; template "
            f"{found.template.path}, Packer runs in {graph.images[name].packer_dir})")
        say(table([[path, why] for path, why in found.files.items()], ["input", "why"]))
        if found.dropped_in_sandbox:
            say(f"the sandbox leaves out {', '.join(found.dropped_in_sandbox)}")
