"""The registry: image records in S3, shared by every laptop and agent.

Under ``$AMI_PREFIX`` in the bucket:

- ``channels/<channel>/<image>.json``  the record of the image's current AMI
  in that channel (``main`` for the default branch, else the branch's)
- ``channels/<channel>/<image>.txt``   just its AMI id in the main region
- ``digests/<image>/<digest>.json``  every record ever built, by content
  digest, shared by all channels (the latest build of each digest)
- ``built/<ami>.json``  each AMI this registry built, in every region: what
  gc may delete once it is also tagged for this registry
- ``promotions/<image>/<time>-<id>.json``  who promoted what, when
- ``locks/<image>/<digest>.json``  who is building (see ``state.locks``)

SSE-S3 ETags are the MD5 of the body: a pull lists the channel once and
fetches only the records whose ETag differs from the local copy. The
registry works on any :class:`~tasks.adapters.s3.Store`.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable

from ..core.clock import Clock
from ..core.errors import AmiError, FAILED
from ..core.names import AMI_RE
from ..core.records import Promotion, Record
from ..core.text import did_you_mean
from .s3 import Conflict, Store
from .ssm import Ssm

FETCH_THREADS = 16
ENVELOPE_SUFFIX = ".dsse.json"          # a signed statement, beside its digest record
_MD5_ETAG = re.compile(r'"?([0-9a-f]{32})"?')


def md5_etag(body: bytes) -> str:
    return f'"{hashlib.md5(body).hexdigest()}"'


def same_body(etag: str | None, body: bytes | None) -> bool:
    """Whether an object with this ETag holds ``body`` (SSE-S3 ETags are MD5s;
    any other kind of ETag never matches, so the object is fetched)."""
    if etag is None or body is None:
        return False
    m = _MD5_ETAG.fullmatch(etag)
    return bool(m) and m.group(1) == hashlib.md5(body).hexdigest()


@dataclass
class Pulled:
    """A channel as listed and fetched: each image's record (or None) and
    whether its ``.txt`` holds the record's AMI id."""
    records: dict[str, Record | None] = field(default_factory=dict)
    bodies: dict[str, bytes] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)     # new, updated, same, absent
    txt_stale: list[str] = field(default_factory=list)
    others: list[str] = field(default_factory=list)    # images held here that were not asked for


def revoked_by(note: dict[str, str], caller: bool = True) -> str:
    """A revocation in words: ``revoked by who (AWS caller) at when: why``
    (a plan's row leaves out the caller)."""
    if note.get("malformed"):
        return f"revoked: {note.get('reason')}"
    arn = f" ({note['caller']})" if caller and note.get("caller") else ""
    return (f"revoked by {note.get('by')}{arn} at {note.get('at')}: "
            f"{note.get('reason')}")


class Registry:
    """Records under ``prefix`` in ``store``. With ``ssm_prefix`` and an
    ``ssm`` port, each published id is also an SSM parameter. Promotions
    and revocations are stamped by ``clock``."""

    def __init__(self, store: Store, prefix: str = "", ssm_prefix: str | None = None,
                 ssm: Ssm | None = None, clock: Clock | None = None) -> None:
        self.store = store
        self.clock = clock or Clock()
        self.prefix = prefix
        self.ssm_prefix = ssm_prefix
        self.ssm = ssm
        self.threads = FETCH_THREADS
        self._revocations: dict[str, str] | None = None   # listed by the bucket check
        self._recorded: set[bytes] = set()                # record bodies kept by digest

    # -- keys ----------------------------------------------------------------

    def key(self, *parts: str) -> str:
        return self.prefix + "/".join(parts)

    def current_key(self, channel: str, image: str) -> str:
        return self.key("channels", channel, f"{image}.json")

    def id_key(self, channel: str, image: str) -> str:
        return self.key("channels", channel, f"{image}.txt")

    def digest_key(self, image: str, digest: str) -> str:
        return self.key("digests", image, f"{digest}.json")

    def built_key(self, ami: str) -> str:
        return self.key("built", f"{ami}.json")

    def built(self) -> set[str]:
        """Every AMI this registry built (one listing)."""
        prefix = self.key("built") + "/"
        return {key[len(prefix):-len(".json")] for key in self.listing(prefix)
                if key.endswith(".json")}

    def built_as(self, amis: set[str]) -> dict[str, str | None]:
        """AMI -> the image its ``built/`` marker says it was built as (None:
        the marker cannot be read)."""
        def fetch(ami: str) -> tuple[str, str | None]:
            try:
                found = self.get(self.built_key(ami))
                data = json.loads(found[0]) if found else None
            except (AmiError, ValueError):
                return ami, None
            image = data.get("image") if isinstance(data, dict) else None
            return ami, image if isinstance(image, str) else None

        return dict(self._parallel(fetch, sorted(amis)))

    def attestation_key(self, image: str, digest: str, ami: str) -> str:
        """Where the signed statement of an AMI is kept: beside its digest record."""
        return self.key("digests", image, f"{digest}.{ami}{ENVELOPE_SUFFIX}")

    def test_attestation_key(self, image: str, digest: str, ami: str) -> str:
        """Where the signed test result of an AMI is kept: beside its statement."""
        return self.key("digests", image, f"{digest}.{ami}.tests{ENVELOPE_SUFFIX}")

    def url(self, key: str) -> str:
        return self.store.url(key)

    def identity(self) -> str:
        """This registry, as every AMI it records is tagged (``Registry``):
        its bucket and prefix. Two teams in one account tell their AMIs apart
        by it."""
        return self.store.url(self.prefix)

    # -- objects -------------------------------------------------------------

    def get(self, key: str) -> tuple[bytes, str] | None:
        return self.store.get(key)

    def put(self, key: str, body: bytes, content_type: str = "application/json", *,
            if_match: str | None = None, if_none_match: bool = False) -> str:
        return self.store.put(key, body, content_type, if_match=if_match,
                              if_none_match=if_none_match)

    def listing(self, prefix: str) -> dict[str, str]:
        return self.store.listing(prefix)

    def record_at(self, key: str, image: str | None = None) -> Record | None:
        found = self.get(key)
        if found is None:
            return None
        record = Record.from_json(found[0], self.url(key))
        if image is not None and record.image != image:
            raise AmiError(f"{self.url(key)}: holds the record of {record.image!r}, "
                           f"not {image!r}", code=FAILED)
        return record

    # -- channels ------------------------------------------------------------

    def held(self, listed: dict[str, str] | None = None) -> dict[str, set[str]]:
        """Channel -> the images it holds a record or plain-text id of, from
        one listing of ``channels/`` (or ``listed``, a listing under it)."""
        prefix = self.key("channels") + "/"
        out: dict[str, set[str]] = {}
        for key in self.listing(prefix) if listed is None else listed:
            channel, _, name = key[len(prefix):].partition("/")
            image, _, kind = name.rpartition(".")
            if image and "/" not in name and kind in ("json", "txt"):
                out.setdefault(channel, set()).add(image)
        return out

    def retire(self, channel: str, image: str) -> Record | None:
        """Take ``image`` out of ``channel``: its SSM parameter, its plain-text
        id, then its record (last, so a retirement cut short is found and
        finished by the next). Returns the record it held."""
        key = self.current_key(channel, image)
        record = self.record_at(key, image)
        name = self.ssm_name(channel, image)
        if record is not None and name and self.ssm:
            self.ssm.delete(record.region, name)
        self.store.delete(self.id_key(channel, image))
        self.store.delete(key)
        return record

    def pull(self, channel: str | Callable[[], str], images: list[str],
             local: dict[str, bytes]) -> Pulled:
        """Every image's current record in ``channel``: one listing, then a GET
        of each record whose ETag differs from ``local`` (image -> body held).
        Any record that fails its checks stops the pull. A ``channel`` still
        to be worked out (git names the branch) is asked in the listing's
        thread, while the bucket is checked."""
        named = (lambda: channel) if isinstance(channel, str) else channel
        with ThreadPoolExecutor(max_workers=2) as pool:        # both listings at once
            checked = pool.submit(self.store.check, self.key("revocations") + "/")
            listing = pool.submit(lambda: self.listing(self.key("channels", named()) + "/"))
            # The bucket check speaks first: a missing bucket is named (or, in
            # the sandbox, made) there, and the channel is then listed again.
            self._revocations = checked.result()
            channel = named()
            prefix = self.key("channels", channel) + "/"
            try:
                listed = listing.result()
            except AmiError:
                listed = self.listing(prefix)
        pulled = Pulled(others=sorted(self.held(listed).get(channel, set()) - set(images)))
        stale = []
        for image in images:
            etag = listed.get(self.current_key(channel, image))
            if etag is None:
                pulled.status[image] = "absent"
                pulled.records[image] = None
            elif same_body(etag, local.get(image)):
                pulled.status[image] = "same"
                pulled.bodies[image] = local[image]
            else:
                stale.append(image)

        def fetch(image: str) -> tuple[str, bytes | None]:
            found = self.get(self.current_key(channel, image))
            return image, found[0] if found else None

        for image, body in self._parallel(fetch, stale):
            if body is None:            # deleted between the listing and the GET
                pulled.status[image] = "absent"
                pulled.records[image] = None
            else:
                pulled.status[image] = "updated" if image in local else "new"
                pulled.bodies[image] = body
        for image, body in pulled.bodies.items():
            key = self.current_key(channel, image)
            record = Record.from_json(body, self.url(key))
            if record.image != image:
                raise AmiError(f"{self.url(key)}: holds the record of {record.image!r}, "
                               f"not {image!r}", code=FAILED)
            pulled.records[image] = record
            if not same_body(listed.get(self.id_key(channel, image)), _id_body(record)):
                pulled.txt_stale.append(image)
        return pulled

    # -- revocations ---------------------------------------------------------

    def revocation_key(self, ami: str) -> str:
        return self.key("revocations", f"{ami}.json")

    def revoked(self) -> dict[str, dict[str, str]]:
        """Every revoked AMI: id -> its revocation (by, at, reason, with).

        An AMI is revoked by the object at its own key. One that is not a
        revocation of that AMI (not JSON, not a mapping, naming another AMI)
        still revokes it: it cannot be proved not to, and the note says why
        and how to clear it. It never revokes the AMI its body names."""
        found = {}
        prefix = self.key("revocations") + "/"
        listed, self._revocations = self._revocations, None       # fresh once, then listed anew
        for key in listed if listed is not None else self.listing(prefix):
            ami = key[len(prefix):].removesuffix(".json")
            if not AMI_RE.fullmatch(ami) or not key.endswith(".json"):
                continue                                # not about an AMI
            note = self.revocation_of(ami)
            if note is not None:
                found[ami] = note
        return found

    def revocation_of(self, ami: str) -> dict[str, str] | None:
        """The revocation of one AMI, read now (None: it is not revoked)."""
        key = self.revocation_key(ami)
        got = self.get(key)
        if got is None:
            return None
        try:
            note = json.loads(got[0])
            problem = "" if isinstance(note, dict) else f"a JSON {type(note).__name__}"
        except ValueError:
            note, problem = {}, "not valid JSON"
        if not problem and note.get("ami") != ami:
            problem = f"it names {note.get('ami')!r}"
        if problem:
            note = {"ami": ami, "malformed": "true",
                    "reason": f"{self.url(key)} is not a revocation this tool writes "
                              f"({problem}); it is taken as revoking {ami}: restore it, or "
                              f"doit revoke --undo -a {ami}"}
        return {str(k): str(v) for k, v in note.items()}

    def revoke(self, note: dict[str, str]) -> None:
        """Record a revocation, and the log entry that says who made it."""
        body = (json.dumps(note, indent=2, sort_keys=True) + "\n").encode()
        self.put(self.revocation_key(note["ami"]), body)
        self._log(note)

    def unrevoke(self, ami: str, note: dict[str, str]) -> None:
        self.store.delete(self.revocation_key(ami))
        self._log(note)

    def _log(self, note: dict[str, str]) -> None:
        stamp = self.clock.now().strftime("%Y%m%dT%H%M%S.%fZ")
        self.put(self.key("revocations-log", f"{stamp}-{uuid.uuid4().hex[:8]}.json"),
                 (json.dumps(note, indent=2, sort_keys=True) + "\n").encode(),
                 if_none_match=True)

    def current(self, channel: str, images: list[str]) -> dict[str, Record]:
        """The current records of ``images`` in ``channel`` that exist (a
        GET each, at once): what a branch's plan compares with."""
        found = self._parallel(lambda image: (image, self.record_at(
            self.current_key(channel, image), image)), images)
        return {image: record for image, record in found if record is not None}

    def _parallel(self, fn: Any, items: list) -> list:
        if len(items) <= 1:
            return [fn(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(self.threads, len(items))) as pool:
            return list(pool.map(fn, items))

    def digest_records(self, problems: list[str] | None = None) -> list[Record]:
        """Every record kept by digest (``digests/<image>/<digest>.json``;
        not the signed statements beside them), read at once. With
        ``problems``, one that cannot be read is said there and left out,
        instead of stopping the whole read."""
        keys = [k for k in self.listing(self.key("digests") + "/")
                if k.endswith(".json") and not k.endswith(ENVELOPE_SUFFIX)]

        def read(key: str) -> Record | None:
            try:
                return self.record_at(key)
            except AmiError as err:
                if problems is None:
                    raise
                problems.append(str(err))
                return None
        return [r for r in self._parallel(read, keys) if r is not None]

    def write_id(self, channel: str, record: Record) -> None:
        """``channels/<channel>/<image>.txt``: the AMI id in the main region."""
        self.put(self.id_key(channel, record.image), _id_body(record), "text/plain")

    # -- digests -------------------------------------------------------------

    def by_digest(self, wanted: Iterable[tuple[str, str]], *,
                  lenient: bool = False) -> dict[tuple[str, str], Record | None]:
        """The records kept under ``digests/`` for these (image, digest) pairs,
        fetched in parallel; None where there is none (and, ``lenient``,
        where one cannot be read: it proves nothing)."""
        def fetch(pair: tuple[str, str]) -> tuple[tuple[str, str], Record | None]:
            image, digest = pair
            try:
                record = self.record_at(self.digest_key(image, digest))
            except AmiError:
                if not lenient:
                    raise
                record = None
            ok = record is not None and record.image == image and record.digest == digest
            return pair, record if ok else None

        return dict(self._parallel(fetch, sorted(set(wanted))))

    # -- publishing ----------------------------------------------------------

    def keep_build(self, record: Record) -> None:
        """Mark a new build's AMIs this registry's (``built/``) and keep its
        record by digest: once this is done, a later run reuses the build
        even if it is never made current."""
        if record.source is None:               # ours: the source image is not
            for region, ami in record.amis.items():
                self.put(self.built_key(ami), json.dumps(
                    {"ami": ami, "region": region, "image": record.image,
                     "digest": record.digest}, sort_keys=True).encode())
        body = record.body()
        self.put(self.digest_key(record.image, record.digest), body)
        self._recorded.add(body)

    def publish(self, record: Record, channel: str, *, new_build: bool) -> Record:
        """Publish to S3; returns the record now current.

        The digest copy goes first, so a current pointer never names a record
        that is not also kept by digest. The pointer moves by conditional
        write on the ETag just read. A new build never replaces a current
        record whose build started later (an agent that lost its lock, a
        slower build of other inputs): that one stays current."""
        body = record.body()
        if new_build and body not in self._recorded:
            self.keep_build(record)
        key = self.current_key(channel, record.image)
        for _ in range(10):
            found = self.get(key)
            if found and found[0] == body:
                break
            if found and new_build:
                theirs = Record.from_json(found[0], self.url(key))
                if (theirs.build_started or "") > (record.build_started or ""):
                    return theirs
            try:
                self.put(key, body, if_match=found[1] if found else None,
                         if_none_match=not found)
                break
            except Conflict:
                continue
        else:
            raise AmiError(f"{self.url(key)}: kept changing while publishing "
                           f"{record.image}: run again", code=FAILED)
        self.write_id(channel, record)
        self.write_ssm(channel, record)
        return record

    def ssm_name(self, channel: str, image: str) -> str | None:
        """The SSM parameter a channel's current id is published as, if any."""
        return f"{self.ssm_prefix}/{channel}/{image}" if self.ssm_prefix and self.ssm else None

    def write_ssm(self, channel: str, record: Record) -> None:
        name = self.ssm_name(channel, record.image)
        if name and self.ssm:
            self.ssm.put_ami(record.region, name, record.ami)

    def promote(self, image: str, source: str, target: str, actor: str,
                existing: set[str]) -> tuple[Record, Record | None, Record]:
        """Point channel ``target`` at channel ``source``'s record of ``image``
        and keep a note of who did it, when, and what it replaced. Returns
        the source's record, the one replaced and the one now current."""
        record, replaced = self.promotion_plan(image, source, target, existing)
        now = self.clock.now()
        promotion = Promotion(from_channel=source, by=actor,
                              at=now.isoformat(timespec="seconds"),
                              replaced_ami=replaced.ami if replaced else None,
                              replaced_digest=_own_digest(replaced))
        note = {"image": image, "from_channel": source, "to_channel": target, "ami": record.ami,
                "replaced_ami": promotion.replaced_ami, "by": actor, "at": promotion.at}
        stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
        self.put(self.key("promotions", image, f"{stamp}-{uuid.uuid4().hex[:8]}.json"),
                 (json.dumps(note, indent=2, sort_keys=True) + "\n").encode(),
                 if_none_match=True)
        current = replace(record, promotion=promotion)
        self.publish(current, target, new_build=False)
        return record, replaced, current

    def promotion_plan(self, image: str, source: str, target: str,
                       existing: set[str]) -> tuple[Record, Record | None]:
        """What promoting ``image`` would do, checked before anything moves."""
        key = self.current_key(source, image)
        record = self.record_at(key, image)
        if record is None:
            holding = sorted(c for c, held in self.held().items() if image in held)
            raise AmiError(f"{self.url(key)}: channel {source} has no record of {image}: "
                           + (did_you_mean(source, holding, "did you mean {}? ")
                              or "build it there first; ")
                           + f"channels holding {image}: {', '.join(holding) or 'none'}")
        if record.ami not in existing:
            raise AmiError(f"{image} in channel {source} is {record.ami}, which no longer "
                           "exists: rebuild it before promoting")
        revoked = self.revoked()
        for region, ami in sorted(record.amis.items()):
            if ami in revoked:
                raise AmiError(f"{image} in channel {source} is {record.ami}, and {ami} "
                               f"({region}) was {revoked_by(revoked[ami])}: rebuild it there "
                               "before promoting", code=FAILED)
        return replace(record, promotion=None), self.record_at(self.current_key(target, image),
                                                               image)


def _id_body(record: Record) -> bytes:
    return (record.ami + "\n").encode()


def _own_digest(record: Record | None) -> str | None:
    """The digest a channel's own build would have: a promoted record's is
    the one it replaced, kept in its promotion."""
    if record is None:
        return None
    return record.promotion.replaced_digest if record.promotion else record.digest
