"""Which AMI a command that takes ``-a ami-…`` or ``-i <image>`` means:
the AMI given, or the current AMI of the image in the channel this branch
publishes to (a dirty tree's ``dirty`` channel is not where its AMIs are:
uncommitted edits do not move what ``-i`` names)."""

from __future__ import annotations

from typing import Iterable

from ..adapters.registry import Registry
from ..core.errors import FAILED, AmiError
from ..core.names import AMI_RE
from ..core.settings import Settings, require_bucket
from ..core.text import did_you_mean
from ..state.checkout import Checkout


def chosen_ami(registry: Registry, checkout: Checkout, settings: Settings, command: str,
               ami: str, image: str, names: Iterable[str]) -> str:
    """``names``: the images ``-i`` may name."""
    require_bucket(settings)
    if image and ami:
        raise AmiError(f"{command}: give --ami or --image, not both")
    if image:
        names = list(names)
        if image not in names:
            raise AmiError(f"{command} --image={image}: no such image in amis.yaml"
                           + did_you_mean(image, names))
        channel = checkout.published_channel()
        record = registry.record_at(registry.current_key(channel, image), image)
        if record is None:
            raise AmiError(f"{command} --image={image}: channel {channel} has no record of "
                           f"{image}: build it there, or give --ami", FAILED)
        return record.ami
    if not ami:
        raise AmiError(f"{command}: say which AMI: --ami ami-… or --image <image>")
    if not AMI_RE.fullmatch(ami):
        raise AmiError(f"{command} --ami={ami}: not an AMI id (ami- and 8 to 17 hex digits)")
    return ami
