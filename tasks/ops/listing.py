"""``doit inputs``: every input of an image, and the reference that brought it in."""

from __future__ import annotations

from ..core.errors import AmiError
from ..core.text import did_you_mean, table
from .run import Run


def show_inputs(run: Run, image: str) -> None:
    names = list(run.graph.images) if image in ("", "all") else [image]
    for name in names:
        if name not in run.graph.images:
            raise AmiError(f"inputs --image={name!r}: no such image in amis.yaml"
                           f"{did_you_mean(name, run.graph.images)} "
                           f"(one of {', '.join(run.graph.images)})")
        found = run.checkout.inputs()[name]
        run.say(f"{name}: {len(found.files)} inputs ({found.kind}; template "
                f"{found.template.path}, Packer runs in {run.graph.images[name].packer_dir})")
        run.say(table([[path, why] for path, why in found.files.items()], ["input", "why"]))
        if found.dropped_in_sandbox:
            run.say(f"the sandbox leaves out {', '.join(found.dropped_in_sandbox)}")
