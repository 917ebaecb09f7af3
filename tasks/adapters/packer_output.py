"""Packer's machine-readable output, read as it comes.

Lines have the form ``timestamp,target,type,data...``; inside data, commas
are ``%!(PACKER_COMMA)`` and newlines a literal ``\\n``. A build succeeds
when Packer exits 0, reports no ``error`` lines and names an artifact.
Words like "Error" in provisioner output mean nothing here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..core.names import AMI_RE, REGION_RE

# AWS failures that go away when tried again later; anything else fails at once.
TRANSIENT_ERRORS = ("RequestLimitExceeded", "Throttling", "InsufficientInstanceCapacity",
                    "ServiceUnavailable", "Unavailable", "InternalError", "InternalFailure",
                    "RequestTimeout", "ResourceNotReady", "exceeded wait attempts")
MASK = "<sensitive>"
_INSTANCE_ID = re.compile(r"Instance ID: (i-[0-9a-f]{8,17})\b")

# What Packer's amazon-ebs builder says as it enters each step, and the phase
# a person would call it (the live view shows the phase).
PHASES = (("Prevalidating", "preparing"), ("Creating temporary", "preparing"),
          ("Creating AMI tags", "tagging"), ("Creating snapshot tags", "tagging"),
          ("Launching a source AWS instance", "launching"),
          ("Waiting for instance", "launching"), ("Connected to", "provisioning"),
          ("Provisioning with", "provisioning"), ("Stopping the source instance", "stopping"),
          ("Creating AMI", "creating AMI"), ("Creating the AMI", "creating AMI"),
          ("Waiting for AMI to become ready", "creating AMI"),
          ("Copying/Encrypting AMI", "copying"), ("Adding tags to AMI", "tagging"),
          ("Terminating the source AWS instance", "cleaning up"),
          ("Deleting temporary", "cleaning up"), ("Cleaning up any extra volumes", "cleaning up"))


PHASE_ORDER = ("preparing", "launching", "provisioning", "stopping", "creating AMI", "copying",
               "tagging", "cleaning up")


def phase_of(text: str) -> str | None:
    """The phase a line of Packer's output starts, if it starts one (a
    build's phases only go forward: see PHASE_ORDER)."""
    said = text.split(": ", 1)[1] if text.startswith("==> ") and ": " in text else ""
    for start, phase in PHASES:
        if said.startswith(start):
            return phase
    return None


@dataclass(frozen=True)
class Line:
    timestamp: str
    target: str
    type: str
    data: tuple[str, ...]


def unescape(field_: str) -> str:
    return (field_.replace("%!(PACKER_COMMA)", ",")
                  .replace("\\n", "\n").replace("\\r", "\r"))


def parse_line(raw: str) -> Line | None:
    """One machine-readable line, or None for anything else Packer printed."""
    parts = raw.rstrip("\r\n").split(",")
    if len(parts) < 3 or not parts[0].isdigit() or not parts[2]:
        return None
    return Line(parts[0], parts[1], parts[2], tuple(unescape(p) for p in parts[3:]))


def parse_artifact_ids(value: str) -> dict[str, str]:
    """``eu-west-1:ami-1,us-east-1:ami-2`` (already unescaped) -> region: AMI id."""
    ids: dict[str, str] = {}
    for item in value.split(","):
        region, sep, ami = item.strip().partition(":")
        if sep and REGION_RE.fullmatch(region) and AMI_RE.fullmatch(ami):
            ids[region] = ami
    return ids


@dataclass
class Result:
    exit_code: int
    amis: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    builds: dict[str, dict[str, str]] = field(default_factory=dict)   # build -> its AMIs
    timed_out: float | None = None      # the time limit it ran into, in seconds

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.errors and bool(self.amis)

    @property
    def transient(self) -> bool:
        """Failed for a reason AWS may not give next time (capacity, throttling)."""
        return not self.ok and any(t in e for e in self.errors for t in TRANSIENT_ERRORS)

    def reason(self) -> str:
        if self.timed_out is not None:
            why = f"Packer ran longer than its build_timeout ({self.timed_out:.0f} s) and was " \
                  f"cancelled (exit {self.exit_code})"
        elif self.exit_code != 0:
            why = f"Packer exited {self.exit_code}"
        elif self.errors:
            why = "Packer reported errors"
        else:
            why = "Packer reported no AMI artifact"
        if self.errors:
            why += ": " + error_summary(self.errors[-1])
        return why


def error_summary(error: str) -> str:
    """The telling line of a Packer error: "1 error(s) occurred:" says nothing,
    the "* ..." lines under it do."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    if not lines:
        return "(no message)"
    details = [line.lstrip("* ").strip() for line in lines[1:] if line.startswith("*")]
    if re.match(r"\d+ error\(s\) occurred:?$", lines[0]) and details:
        return "; ".join(details[:3])
    if lines[0].endswith(("{", "[", ":")) and len(lines) > 1:
        # a message that goes on over the next lines (AWS's filters): the gist of them too
        joined = " ".join(lines[:8])
        return joined if len(joined) <= 200 else joined[:199] + "…"
    return lines[0]


MASK_LINE_MIN = 8     # lines of a multi-line secret at least this long are masked on their own


class Masker:
    """Replaces secret values in raw machine-readable text, in every form
    Packer may print them (commas and newlines are escaped there). Packer
    prints a provisioner's output line by line, so each line of a multi-line
    secret (a PEM key) is masked on its own too."""

    def __init__(self, secrets: list[str]) -> None:
        forms = set()
        for secret in secrets:
            parts = [secret]
            if "\n" in secret.strip("\n"):
                parts += [line.strip("\r") for line in secret.splitlines()
                          if len(line.strip()) >= MASK_LINE_MIN]
            for part in parts:
                forms |= {part, part.replace(",", "%!(PACKER_COMMA)").replace("\n", "\\n")}
        self.forms = sorted((f for f in forms if f), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for form in self.forms:
            text = text.replace(form, MASK)
        return text


class Output:
    """Collects a build's result from machine-readable lines as they come."""

    def __init__(self) -> None:
        self.amis: dict[str, str] = {}
        self.builds: dict[str, dict[str, str]] = {}
        self.errors: list[str] = []
        self.instance: str | None = None       # the build instance, once launched

    def readable(self, raw: str) -> list[str]:
        """Feed one raw line; return what a person should see of it."""
        line = parse_line(raw)
        if line is None:
            text = raw.rstrip("\r\n")
            return [text] if text.strip() else []
        if line.type == "ui" and len(line.data) >= 2:
            found = _INSTANCE_ID.search(line.data[1])
            if found and self.instance is None:
                self.instance = found.group(1)
            return [t for t in line.data[1].splitlines() if t.strip()]
        if line.type == "error" and line.data:
            self.errors.append(line.data[0])
        elif line.type == "artifact" and len(line.data) >= 3 and line.data[1] == "id":
            ids = parse_artifact_ids(line.data[2])
            self.amis.update(ids)
            self.builds.setdefault(line.target, {}).update(ids)
        return []


def machine_log(log: Path) -> Path:
    """Where Packer's machine-readable stream is kept, beside the readable log."""
    return log.with_name(log.stem + ".machine.log")


def stamped(timestamp: str, text: str) -> str:
    """A line of the readable log: the UTC time Packer gave it, then the text."""
    when = time.gmtime(int(timestamp)) if timestamp.isdigit() else time.gmtime()
    return f"{time.strftime('%H:%M:%S', when)} {text}\n"

