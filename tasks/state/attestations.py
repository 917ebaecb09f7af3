"""An AMI's signed provenance, checked: the envelope its ``Provenance`` tag
names hashes to that tag, its signature verifies with the run's key, its
subject is this AMI in this region, and its digest is the one expected.

``doit verify`` walks a chain of these (``ops.verify``); with
AMI_SIGNING_KEY set, the lookup keeps, reuses or repairs an AMI only when
its own statement checks (:class:`Attestations`). An AMI checked once with
this key, this envelope and this digest is remembered in
``.amis/attested.json``, so a no-op does not fetch and verify every
statement again.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable

from ..adapters import signing
from ..adapters.registry import Registry
from ..core import provenance
from ..core.errors import FAILED, AmiError
from ..core.files import write_atomic

TAG = "Provenance"


def statement(registry: Registry, key: Any, image: str, digest: str, ami: str, region: str,
              sha: str | None) -> provenance.Link:
    """The checked statement of ``ami`` (tagged ``sha``), built as ``image``
    with ``digest``; AmiError saying which check failed."""
    if not sha:
        raise AmiError("unsigned: it has no Provenance tag (built without AMI_SIGNING_KEY)",
                       FAILED)
    where = registry.attestation_key(image, digest, ami)
    got = registry.get(where)
    if got is None:
        raise AmiError(f"no signed statement at {registry.url(where)}", FAILED)
    envelope = got[0]
    if provenance.envelope_digest(envelope) != sha:
        raise AmiError(f"the statement at {registry.url(where)} was changed: it does not hash "
                       f"to the AMI's Provenance tag {sha[:12]}", FAILED)
    payload = signing.opened(envelope, key, registry.url(where))
    try:
        link = provenance.link(json.loads(payload))
    except ValueError as err:
        raise AmiError(f"its statement is not one this tool writes ({err})", FAILED) from None
    if link.amis.get(region) != ami:
        raise AmiError(f"the signed statement is of {', '.join(link.amis.values()) or 'nothing'}, "
                       "not this AMI (tags copied from another AMI?)", FAILED)
    if link.digest != digest:
        raise AmiError(f"the signed statement is of digest {link.digest[:12]}, not "
                       f"{digest[:12]}", FAILED)
    return link


class Attestations:
    """The check the lookup makes of an AMI before keeping it, with the
    run's public key (asked for once, on first use)."""

    def __init__(self, registry: Registry, key: Callable[[], Any], remembered: Path) -> None:
        self.registry = registry
        self.key = key
        self.path = remembered
        self._lock = threading.Lock()
        self._checked: set[str] | None = None

    def _seen(self) -> set[str]:
        """What was checked before with this key (its id: another key behind
        the same alias checks everything anew)."""
        if self._checked is None:
            try:
                data = json.loads(self.path.read_text())
                kept = data.get(self.key().keyid, []) if isinstance(data, dict) else []
                self._checked = {str(entry) for entry in kept} if isinstance(kept, list) else set()
            except (OSError, ValueError):
                self._checked = set()
        return self._checked

    def problem(self, image: str, digest: str, ami: str, region: str,
                sha: str | None) -> str | None:
        """Why ``ami`` is not proven the build its record says (None: it is)."""
        entry = f"{region}:{ami}:{digest}:{sha}"
        key = self.key()            # a key that cannot be read is the run's error, not the AMI's
        with self._lock:
            if entry in self._seen():
                return None
        try:
            statement(self.registry, key, image, digest, ami, region, sha)
        except AmiError as err:
            return (f"AMI {ami} ({region}) is not proven by its signed provenance ({err}): "
                    "with AMI_SIGNING_KEY set, only an AMI whose statement verifies is kept")
        with self._lock:
            seen = self._seen()
            seen.add(entry)
            write_atomic(self.path, json.dumps({self.key().keyid: sorted(seen)}).encode(),
                         durable=False)
        return None
