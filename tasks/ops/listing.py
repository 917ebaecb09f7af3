"""``doit inputs``: every input of an image, and the reference that brought it in."""

from __future__ import annotations

from typing import Callable

from ..core.errors import AmiError
from ..core.graph import Graph
from ..core.text import did_you_mean, table
from ..state.checkout import Checkout


def show_inputs(graph: Graph, checkout: Checkout, say: Callable[[str], None],
                image: str) -> None:
    """Each image's inputs, listed even when it has problems: they follow
    its table, and the command fails once all are shown."""
    names = list(graph.images) if image in ("", "all") else [image]
    found, problems = checkout.found()
    for name in names:
        if name not in graph.images:
            raise AmiError(f"inputs --image={name!r}: no such image in amis.yaml"
                           f"{did_you_mean(name, graph.images)} "
                           f"(one of {', '.join(graph.images)})")
        if name in found:
            inputs = found[name]
            say(f"{name}: {len(inputs.files)} inputs ({inputs.kind}; template "
                f"{inputs.template.path}, Packer runs in {graph.images[name].packer_dir})")
            say(table([[path, why] for path, why in inputs.files.items()], ["input", "why"]))
            spec = graph.images[name]
            for what, declared in (("build host files", spec.host_inputs),
                                   ("environment variables", spec.env_inputs)):
                if declared:
                    say(f"{name}: also {what}, their hashes in the digest: "
                        f"{', '.join(declared)}")
            if inputs.dropped_in_sandbox:
                say(f"the sandbox leaves out {', '.join(inputs.dropped_in_sandbox)}")
        for problem in problems.get(name, ()):
            say(f"{name}: refused: {problem}")
    stopped = [n for n in names if problems.get(n)]
    if stopped:
        count = sum(len(problems[n]) for n in stopped)
        raise AmiError(f"inputs: {count} problem{'s' if count > 1 else ''} of "
                       f"{', '.join(stopped)}, each shown above with its fix: fix "
                       f"{'them' if count > 1 else 'it'}, then run again")
