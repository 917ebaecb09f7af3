"""Where an AMI comes from: its chain of records back to the source image."""

from __future__ import annotations

from pathlib import Path

from ..adapters.registry import Registry
from ..core.errors import AmiError
from ..core.names import AMI_RE
from ..core.records import Record, read_local


def _index(registry: Registry, records: list[Path]) -> dict[str, Record]:
    """AMI id (any region) -> record, from local records and every record
    kept by digest in the bucket."""
    index: dict[str, Record] = {}
    for path in records:
        record = read_local(path)
        if record:
            index.update({ami: record for ami in record.amis.values()})
    for record in registry.digest_records():
        for ami in record.amis.values():
            index.setdefault(ami, record)
    return index


def ancestry(registry: Registry, records: list[Path], ami: str) -> list[Record]:
    if not AMI_RE.fullmatch(ami):
        raise AmiError(f"explain --ami={ami!r}: not an AMI id (ami- and 8 to 17 hex digits)")
    index = _index(registry, records)
    if ami not in index:
        raise AmiError(f"{ami}: no record of this project built it (searched local records "
                       f"and {registry.url(registry.key('digests'))}/)")
    chain = [index[ami]]
    while chain[-1].parent and chain[-1].parent.get("ami") in index and len(chain) < 50:
        chain.append(index[chain[-1].parent["ami"]])
    return chain


def render(chain: list[Record], ami: str) -> str:
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


def explain(registry: Registry, records: Path, ami: str) -> str:
    """``doit explain -a ami-...``: the AMI's ancestry, rendered (``records``:
    the folder of local records)."""
    registry.store.check()
    return render(ancestry(registry, sorted(records.glob("*.json")), ami), ami)
