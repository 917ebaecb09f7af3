"""Running Packer and reading its machine-readable output.

A build succeeds when Packer exits 0, reports no ``error`` lines and names
an artifact. Words like "Error" in provisioner output mean nothing here.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import AmiError
from .graph import AMI_RE, REGION_RE, Image

_EBS_BUILDERS = {"amazon-ebs"}
_SKIPPED_IN_SANDBOX = {"ansible", "ansible-local"}
CLEANUP_TIMEOUT = 300   # seconds Packer may take to clean up after an interrupt


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
        if sep and REGION_RE.match(region) and AMI_RE.match(ami):
            ids[region] = ami
    return ids


@dataclass
class Result:
    exit_code: int
    amis: dict[str, str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.errors and bool(self.amis)

    def reason(self) -> str:
        if self.exit_code != 0:
            why = f"Packer exited {self.exit_code}"
        elif self.errors:
            why = "Packer reported errors"
        else:
            why = "Packer reported no AMI artifact"
        if self.errors:
            why += ": " + self.errors[-1].strip().splitlines()[0]
        return why


class Output:
    """Collects a build's result from machine-readable lines as they come."""

    def __init__(self) -> None:
        self.amis: dict[str, str] = {}
        self.errors: list[str] = []

    def readable(self, raw: str) -> list[str]:
        """Feed one raw line; return what a person should see of it."""
        line = parse_line(raw)
        if line is None:
            text = raw.rstrip("\r\n")
            return [text] if text.strip() else []
        if line.type == "ui" and len(line.data) >= 2:
            return [t for t in line.data[1].splitlines() if t.strip()]
        if line.type == "error" and line.data:
            self.errors.append(line.data[0])
        elif line.type == "artifact" and len(line.data) >= 3 and line.data[1] == "id":
            self.amis.update(parse_artifact_ids(line.data[2]))
        return []


def effective_template(path: Path, image: Image, endpoint: str | None, sandbox: bool) -> dict[str, Any]:
    """The image's template with what the tree decides filled in: copy
    regions, the EC2 endpoint and, in the sandbox, no communicator and no
    Ansible (the emulator runs no instances to provision)."""
    try:
        template = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AmiError(f"{path}: template not found (image {image.name})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise AmiError(f"{path}: not valid JSON ({err}): fix the template") from None
    builders = template.get("builders") if isinstance(template, dict) else None
    ebs = [b for b in builders or [] if isinstance(b, dict) and b.get("type") in _EBS_BUILDERS]
    if not ebs:
        raise AmiError(f"{path}: no amazon-ebs builder: image {image.name} needs one")
    for builder in ebs:
        if len(image.regions) > 1:
            builder["ami_regions"] = list(image.regions[1:])
        if endpoint:
            builder["custom_endpoint_ec2"] = endpoint
            builder["skip_region_validation"] = True
        if sandbox:
            builder["communicator"] = "none"
    if sandbox:
        template["provisioners"] = [p for p in template.get("provisioners") or []
                                    if p.get("type") not in _SKIPPED_IN_SANDBOX]
    return template


def command(packer: str, template: Path, variables: dict[str, str]) -> list[str]:
    argv = [packer, "build", "-machine-readable", "-color=false"]
    for key, value in sorted(variables.items()):
        argv += ["-var", f"{key}={value}"]
    return argv + [str(template)]


def version(packer: str, env: dict[str, str]) -> str:
    try:
        out = subprocess.run([packer, "version", "-machine-readable"], env=env,
                             capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AmiError(f"cannot run {packer!r} ({err}): check PACKER or your Packer install") from None
    for raw in out.splitlines():
        line = parse_line(raw)
        if line and line.type == "version" and line.data:
            return line.data[0]
    return "unknown"


def run(argv: list[str], env: dict[str, str], cwd: Path, log: Path,
        echo: Callable[[str], None]) -> Result:
    """Run Packer, keep its whole output in ``log``, echo it readably.

    Packer stays in our process group, so a Ctrl-C at the terminal reaches
    it as well as doit (Packer ignores SIGINT sent to its PID alone, not to
    its group) and it cancels the build and cleans up; we wait for that.
    """
    out = Output()
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w", encoding="utf-8") as log_file:
        try:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
        except OSError as err:
            raise AmiError(f"cannot run {argv[0]!r} ({err}): check PACKER or your Packer install") from None
        try:
            assert proc.stdout is not None
            for raw_bytes in proc.stdout:
                raw = raw_bytes.decode("utf-8", errors="replace")
                log_file.write(raw)
                for text in out.readable(raw):
                    echo(text)
            code = proc.wait()
        except KeyboardInterrupt:
            echo("interrupted: waiting for Packer to clean up")
            try:
                proc.wait(timeout=CLEANUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise AmiError(f"interrupted: Packer stopped, nothing recorded; log: {log}") from None
    return Result(exit_code=code, amis=out.amis, errors=out.errors)
