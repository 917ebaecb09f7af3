"""``doit promote``: point a channel at another channel's AMI of an image
(or of every image), checked for every image before any moves, logged."""

from __future__ import annotations

from ..adapters.git import actor
from ..core.errors import AmiError
from ..core.channels import channel_for_branch
from ..core.names import CHANNEL_RE
from ..core.records import save_local
from ..core.text import did_you_mean
from .run import Run


def promote(run: Run, image: str, source: str, target: str) -> None:
    channels = []
    for what, name in (("--from", source), ("--to", target)):
        if not name:
            raise AmiError(f"promote {what}: give a channel or a branch name")
        channel = name if CHANNEL_RE.fullmatch(name) else channel_for_branch(name)
        if channel != name:
            run.say(f"promote {what} {name}: branch {name} publishes to channel {channel}")
        channels.append(channel)
    source, target = channels
    graph = run.graph
    images = graph.names if image == "all" else [image]
    if image != "all" and image not in graph.names:
        raise AmiError(f"promote --image={image!r}: no such image in amis.yaml"
                       f"{did_you_mean(image, graph.names)} (one of {', '.join(graph.names)}, "
                       "or all)")
    if source == target:
        raise AmiError(f"promote: --from and --to are both channel {source}: nothing to promote; "
                       "name the channel to promote to with --to")
    who = actor(run.settings)
    active = run.channel()[0]
    registry = run.registry
    records = [registry.record_at(registry.current_key(source, n), n) for n in images]
    existing = run.aws.existing_amis(graph.region, sorted({r.ami for r in records if r}))
    for name in images:         # every image checked before any moves
        registry.promotion_plan(name, source, target, existing)
    for name in images:
        promoted, replaced, current = registry.promote(name, source, target, who, existing)
        if target == active:
            save_local(run.record_path(name), current.body())
        run.say(f"channel {target}: {replaced.ami if replaced else 'nothing'} -> "
                f"{promoted.ami} (from {source}, by {who})", name)
