"""Where an AMI comes from: its chain of records back to the source image."""

from __future__ import annotations

from . import aws, registry
from .config import Settings
from .errors import AmiError
from .graph import AMI_RE


def _index(settings: Settings, region: str) -> dict[str, registry.Record]:
    """AMI id (any region) -> record, from local records and every record
    kept by digest in the bucket."""
    index: dict[str, registry.Record] = {}
    for path in sorted(settings.records.glob("*.json")):
        record = registry.read_local(path)
        if record:
            index.update({ami: record for ami in record.amis.values()})
    s3 = aws.client(settings, "s3", region)
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=settings.bucket, Prefix=f"{settings.prefix}digests/")
        keys = [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    except aws.aws_errors() as err:
        raise aws.explain(err, f"listing s3://{settings.bucket}/{settings.prefix}digests/") from None
    for key in keys:
        body = registry.get_object(settings, region, key)
        if body:
            record = registry.Record.from_json(body[0], f"s3://{settings.bucket}/{key}")
            for ami in record.amis.values():
                index.setdefault(ami, record)
    return index


def ancestry(settings: Settings, region: str, ami: str) -> list[registry.Record]:
    if not AMI_RE.match(ami):
        raise AmiError(f"explain --ami={ami!r}: not an AMI id (ami- and 8 to 17 hex digits)")
    index = _index(settings, region)
    if ami not in index:
        raise AmiError(f"{ami}: no record of this project built it (searched local records "
                       f"and s3://{settings.bucket}/{settings.prefix}digests/)")
    chain = [index[ami]]
    while chain[-1].parent and chain[-1].parent.get("ami") in index and len(chain) < 50:
        chain.append(index[chain[-1].parent["ami"]])
    return chain


def render(chain: list[registry.Record], ami: str) -> str:
    lines = []
    for depth, record in enumerate(chain):
        shown = ami if depth == 0 else record.ami
        git = record.git or {}
        if record.source is not None:
            what = f"source image ({record.source.get('resolved', 'pinned')})"
        else:
            what = (f"built {record.build_finished or '?'} from {git.get('branch', '?')} "
                    f"@ {str(git.get('commit', '?'))[:12]}"
                    + (" (dirty)" if git.get("dirty") else "")
                    + f", digest {record.digest[:12]}")
        indent = "  " * depth + ("└ " if depth else "")
        lines.append(f"{indent}{shown}  {record.image}: {what}")
        if record.parent and depth == len(chain) - 1 and record.source is None:
            lines.append("  " * (depth + 1) + f"└ {record.parent.get('ami')}  "
                         f"{record.parent.get('image')}: no record found")
    return "\n".join(lines)
