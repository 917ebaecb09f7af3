"""The Packer runner without Packer (:class:`ScriptedPacker`). A build makes
its AMIs through the EC2 client it is given (an emulator's, or
``FakeEc2.client``), tagged as the runner has every template tag them, in
well under a second; a script may make a build fail, or hold it until
released."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ...core.names import MANAGED_BY
from ..packer_output import Result, machine_log, stamped


_DIGEST_TAG = re.compile(r'Digest\W+([0-9a-f]{64})')
_REGISTRY_TAG = re.compile(r'Registry\W+(s3://[^"\\]+)')


def runner_tags(template: Path, given: Mapping[str, str]) -> dict[str, str]:
    """The tags a build's AMI gets: those the runner adds to every template
    (Image, Digest, ManagedBy: the digest read from the configuration Packer
    was handed, as not every template declares the variable) and the
    example template's provenance, from the variables given."""
    paths = sorted(template.glob("*.json")) if template.is_dir() else [template]
    text = "".join(p.read_text() for p in paths)
    digest = _DIGEST_TAG.search(text)
    registry = _REGISTRY_TAG.search(text)
    tags = {"Image": given["image"], "Digest": digest.group(1) if digest else "",
            "ManagedBy": MANAGED_BY, **({"Registry": registry.group(1)} if registry else {})}
    for tag, var in (("ParentImage", "parent_image"), ("ParentAmi", "source_ami"),
                     ("Commit", "commit"), ("Branch", "branch"), ("BuildTime", "build_time")):
        if var in given:
            tags[tag] = given[var]
    return tags


def variables(argv: list[str]) -> dict[str, str]:
    """The variables of a Packer command line: its JSON var files, in order,
    then any ``-var key=value``."""
    found: dict[str, str] = {}
    for arg in argv:
        if arg.startswith("-var-file=") and arg.endswith(".json"):
            found.update(json.loads(Path(arg[len("-var-file="):]).read_text(encoding="utf-8")))
    for flag, value in zip(argv, argv[1:]):
        if flag == "-var":
            key, _, val = value.partition("=")
            found[key] = val
    return found


@dataclass
class Build:
    """One build the fake ran: its variables and what it made."""
    image: str
    variables: dict[str, str]
    amis: dict[str, str]
    env: Mapping[str, str]
    argv: tuple[str, ...] = ()


@dataclass
class ScriptedPacker:
    """The Packer runner's interface (``executable``, ``version``, ``run``).

    ``ec2(region)`` returns a boto3 EC2 client for the region. A build of an
    image in ``fail`` reports that error (and makes nothing), every time or,
    with ``fail_times``, that many times; ``failures`` lists them; one in
    ``instead`` returns what its function returns, given the build's
    variables; one in ``hold`` waits on its Event, once ``started`` is set,
    before it goes on. One in ``sources`` builds that many sources (an AMI
    each, as a template of several sources does); one in ``fail_after``
    makes its AMIs, then fails with that error."""
    ec2: Callable[[str], Any]
    regions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)   # image -> copies
    fail: dict[str, str] = field(default_factory=dict)
    fail_times: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    instead: dict[str, Callable[[dict[str, str]], Result]] = field(default_factory=dict)
    hold: dict[str, threading.Event] = field(default_factory=dict)
    started: dict[str, threading.Event] = field(default_factory=dict)
    builds: list[Build] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)
    fail_after: dict[str, str] = field(default_factory=dict)
    packer_version: str = "1.6.6"

    def executable(self) -> str:
        return "scripted-packer"

    def version(self) -> str:
        return self.packer_version

    def known_version(self) -> str | None:
        return self.packer_version

    def run(self, argv: list[str], env: Mapping[str, str], cwd: Path, log: Path,
            echo: Callable[[str], None], mask: Callable[[str], str] = lambda t: t,
            on_instance: Callable[[str], None] | None = None,
            timeout: float | None = None, header: tuple[str, ...] | list[str] = ()) -> Result:
        given = variables(argv)
        image, region = given["image"], given["region"]
        log.parent.mkdir(parents=True, exist_ok=True)

        def logged(raw: str, said: list[str]) -> None:
            """Both logs, as the real runner writes them."""
            machine_log(log).write_text(mask(raw))
            log.write_text(mask("".join(stamped("", t) for t in [*header, *said])))
            for text in said:
                echo(text)

        self.started.setdefault(image, threading.Event()).set()
        if image in self.hold:
            self.hold[image].wait()
        if image in self.fail and self.fail_times.get(image, 1) > 0:
            if image in self.fail_times:
                self.fail_times[image] -= 1
            self.failures.append(image)
            logged(f"0,,error,{self.fail[image]}\n", [self.fail[image]])
            return Result(exit_code=1, errors=[self.fail[image]])
        if image in self.instead:
            logged("", [])
            return self.instead[image](given)
        tags = runner_tags(Path(argv[-1]), given)
        builds = {}
        for n in range(self.sources.get(image, 1)):
            builds[f"amazon-ebs.s{n}" if n else "amazon-ebs"] = \
                self._make(image, region, given, tags, on_instance)
        amis = {r: a for made in builds.values() for r, a in made.items()}
        logged("".join(f"0,{build},artifact,0,id,{r}:{a}\n"
                       for build, made in builds.items() for r, a in made.items()),
               [f"==> {image}: AMIs were created: "
                + ", ".join(f"{r}: {a}" for r, a in amis.items())])
        if image in self.fail_after:
            self.failures.append(image)
            return Result(exit_code=1, amis=amis, errors=[self.fail_after[image]], builds=builds)
        self.builds.append(Build(image, given, amis, env, tuple(argv)))
        return Result(exit_code=0, amis=amis, builds=builds)

    def _make(self, image: str, region: str, given: Mapping[str, str], tags: dict[str, str],
              on_instance: Callable[[str], None] | None) -> dict[str, str]:
        ec2 = self.ec2(region)
        instance = ec2.run_instances(ImageId=given["source_ami"], MinCount=1, MaxCount=1,
                                     InstanceType="t3.small")["Instances"][0]["InstanceId"]
        if on_instance:
            on_instance(instance)
        ami = ec2.create_image(InstanceId=instance,
                               Name=f"{image}-{given.get('build_time', '')}-{instance}"
                               )["ImageId"]
        ec2.create_tags(Resources=[ami], Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
        ec2.terminate_instances(InstanceIds=[instance])
        amis = {region: ami}
        for copy in self.regions.get(image, ()):
            other = self.ec2(copy)
            copied = other.copy_image(SourceImageId=ami, SourceRegion=region,
                                      Name=f"{image}-copy-{ami}")["ImageId"]
            other.create_tags(Resources=[copied],
                              Tags=[{"Key": k, "Value": v} for k, v in tags.items()])
            amis[copy] = copied
        return amis
