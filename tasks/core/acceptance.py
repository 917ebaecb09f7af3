"""Acceptance: an AMI becomes current only after its tests passed on an
instance of it. Pure: what an AMI's record says it passed, for which tests,
and what a test run's JUnit report says.

The tests are not inputs of the AMI. Their own digest (over the same
``path  entry`` lines as an image's inputs) is kept apart, in the record's
``tests``, so a change to the tests alone re-tests the AMI already built,
and a digest accepted with the same tests is never tested again.

An image's acceptance is one of:

- ``none``: the image has no tests; nothing to wait for;
- ``passed``: the record passed exactly these tests;
- ``rejected``: the record failed exactly these tests (not retried: change
  the image or its tests);
- ``untested``: not run with these tests (never tested, or tests changed).
"""

from __future__ import annotations

import hashlib
from xml.etree import ElementTree

from .digest import changed_inputs
from .errors import AmiError, FAILED
from .records import MAX_FAILURES, Record, Tested
from .text import some

NONE, PASSED, REJECTED, UNTESTED = "none", "passed", "rejected", "untested"


def tests_digest(manifest: dict[str, str]) -> str | None:
    """The digest of an image's test files (path -> manifest entry); None
    when it has none."""
    if not manifest:
        return None
    lines = [f"{path}  {entry}" for path, entry in sorted(manifest.items())]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def state(record: Record | None, digest: str | None) -> str:
    """What ``record``'s AMI is, for the tests of ``digest``."""
    if digest is None:
        return NONE
    tested = record.tests if record is not None else None
    if tested is None or tested.digest != digest:
        return UNTESTED
    return PASSED if tested.passed else REJECTED


def what_changed(record: Record | None, manifest: dict[str, str]) -> str:
    """Why a record's AMI is to be tested, for a plan's why."""
    tested = record.tests if record is not None else None
    if tested is None:
        return "never tested"
    changed = changed_inputs(tested.files, manifest)
    return f"tests changed: {some(changed)}" if changed else "tests changed"


def rejection(tested: Tested) -> str:
    """One line: which tests failed, and when."""
    names = ", ".join(tested.failures[:3])
    more = tested.counts.get("failed", 0) + tested.counts.get("errors", 0) - 3
    return (f"rejected by tests {tested.digest[:12]} at {tested.at}: "
            f"{names}{f' and {more} more' if more > 0 else ''}")


def summary(junit: str, where: str) -> tuple[dict[str, int], list[str]]:
    """Counts (passed, failed, skipped, errors) and the failing tests' ids
    (``file::test``), from pytest's JUnit XML."""
    try:
        root = ElementTree.fromstring(junit)
    except ElementTree.ParseError as err:
        raise AmiError(f"{where}: not a JUnit report ({err}): the test run did not finish; "
                       "see its log", code=FAILED) from None
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    failures = []
    for case in root.iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "errors"}.get(child.tag, child.tag)
                break
        counts[outcome] += 1
        if outcome in ("failed", "errors"):
            failures.append(_test_id(case))
    return counts, failures[:MAX_FAILURES]


def _test_id(case: ElementTree.Element) -> str:
    """``ami-tests/web/test_web.py::test_nginx_runs`` from pytest's classname
    (``ami-tests.web.test_web``) and name (``test_nginx_runs[paramiko://…]``)."""
    name = case.get("name", "?").split("[", 1)[0]
    module = case.get("file") or (case.get("classname", "").replace(".", "/") + ".py")
    return f"{module}::{name}"


def skipped_reasons(junit: str) -> list[str]:
    """The distinct reasons tests were skipped, as pytest wrote them."""
    try:
        root = ElementTree.fromstring(junit)
    except ElementTree.ParseError:
        return []
    reasons: list[str] = []
    for skipped in root.iter("skipped"):
        reason = (skipped.get("message") or "").strip()
        if reason and reason not in reasons:
            reasons.append(reason)
    return reasons


def counted(counts: dict[str, int]) -> str:
    """``3 passed, 1 failed, 2 skipped``: the counts that are not 0."""
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n) or "no tests"
