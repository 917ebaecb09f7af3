"""Checks before Packer runs, which fail in seconds instead of minutes:

- preflight (``plan``, ``validate`` and every build): regions AWS does not
  have, instance types EC2 does not have, a template this Packer cannot
  run; read offline;
- validation (``validate``, and every build unless AMI_SKIP_VALIDATE):
  ``packer fmt -check``, ``packer validate`` and ``ansible-playbook
  --syntax-check`` in the image's stage (so they see exactly its inputs),
  and ``ansible-lint`` on the project's own playbooks and roles
  (third-party roles are not held to the project's profile).

What Packer made is checked after it ran (``postbuild``); an AMI's signed
provenance is checked by ``verify``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import yaml

from ..adapters import stage
from ..adapters.aws import known_instance_types, known_regions
from ..adapters.packer import PackerRunner
from ..adapters.tools import Tools, tool, with_tools
from ..core.diagnostics import Diagnostics, by_image
from ..core.errors import AmiError
from ..core.files import write_atomic
from ..core.graph import Graph
from ..core.names import MANAGED_BY
from ..core.settings import Settings
from ..core.text import did_you_mean
from ..core.versions import satisfies, version_tuple
from ..inputs.ansible.lint import lint_settings
from ..inputs.builder import builder_values, instance_types
from ..inputs.image import Inputs
from ..inputs.repo import Repo
from ..inputs.template import Template
from ..inputs.where import located_text
from ..state.checkout import Checkout
from .invocation import INIT_SINCE, Stager, build_variables

_PLACEHOLDER_AMI = "ami-00000000"       # validate needs a value; no AMI is looked up

_INSTEAD = MappingProxyType({
    "templatefile()": "use file()",
    "packer { required_plugins }": "remove the block (1.6 has amazon-ebs built in)",
    "data sources": "give the value as a variable (a var file, or vars: in amis.yaml)",
    "amazon-ebs metadata_options": "remove it (the runner requires IMDSv2 on the build "
                                   "instance and on the AMI itself)",
    "the file provisioner's content": "put the content in a file of the repository and "
                                      "name it with source",
    "a gp3 volume without throughput and iops": "set throughput = 125 and iops = 3000",
    "{{packer_version}}": "declare a variable packer_version and use it ({{user "
                          "`packer_version`}}, in HCL2 var.packer_version): the tree passes "
                          "Packer's version"})
# How each thing that needs a newer Packer is written, to find its line.
_WRITTEN = MappingProxyType({
    "templatefile()": r"templatefile\(", "data sources": r'^\s*data\s+"',
    "packer { required_plugins }": r"required_plugins", "{{packer_version}}": r"packer_version",
    "the file provisioner's content": r'^\s*"?content"?\s*[=:]',
    "a gp3 volume without throughput and iops": r"gp3"})


_COUNTED = re.compile(r"(Error: )?\d+ error\(s\) occurred:?$")
_PEP8 = re.compile(r"^[^\s:][^:]*:\d+(:\d+)?: \S+")


def _problem(output: str) -> tuple[str, str]:
    """A checker's first error line, and where it points (``on file line N``)."""
    lines = output.splitlines()
    # ansible-lint -f pep8: "file:line: rule: message"
    pep8 = [line.strip() for line in lines if _PEP8.match(line.strip())]
    linted = f"{pep8[0]}" + (f" (and {len(pep8) - 1} more)" if len(pep8) > 1 else "") \
        if pep8 else ""
    # "Error: 1 error(s) occurred:" says nothing; the "* ..." lines under it do
    counted = [line for line in lines if _COUNTED.match(line.strip())]
    details = [line.strip(" *") for line in lines if line.lstrip().startswith("* ")]
    problem = linted or (details[0] if counted and details else next(
        (line.strip(" *") for line in lines
         if "error" in line.lower() or line.lstrip().startswith("*")), ""))
    at = next((line.strip().rstrip(":") for line in output.splitlines()
               if line.strip().startswith("on ") and " line " in line), "")
    return problem, at


@dataclass(frozen=True)
class TestSettings:
    instance_type: str
    user: str                         # the template's ssh_username
    subnet: str | None                # None: the default VPC's default subnet
    security_group: str | None        # None: a temporary one that lets SSH in


@dataclass
class Prebuild:
    graph: Graph
    settings: Settings
    checkout: Checkout
    packers: PackerRunner
    tools: Tools
    stager: Stager
    # template -> (Packer read it, its output): asked once for the images sharing it
    _packer_said: dict[str, tuple[bool, str]] = field(default_factory=dict, init=False,
                                                      repr=False)
    _said_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    # -- preflight ----------------------------------------------------------------

    def preflight(self, name: str) -> None:
        """What can be known wrong before a build: regions AWS does not have,
        instance types EC2 does not have, a template this Packer cannot run.
        One AmiError names every problem found."""
        problems = self.problems(name, self.checkout.inputs()[name])
        if problems:
            raise AmiError.of(by_image([(name, p) for p in problems]))

    def every_problem(self) -> list[str]:
        """Every image's preflight problems, one line each (one a template's
        images share names them all)."""
        return by_image([(name, problem) for name, inputs in self.checkout.inputs().items()
                         for problem in self.problems(name, inputs)])

    def problems(self, name: str, inputs: Inputs, *, offline: bool = False) -> list[str]:
        """The preflight's problems of one image. ``offline`` (while doit
        defines the tasks): no program runs, so the Packer version is the one
        a run found before, and without one it is not judged."""
        problems = Diagnostics()
        self._check_regions(name, problems)
        self._check_instance_types(name, inputs, problems)
        version = self.packers.known_version() if offline else None
        if not offline or version is not None:
            with problems.collect():
                self._check_versions(inputs.template, problems, version)
        return problems.problems

    def _values(self, name: str, inputs: Inputs) -> dict[str, Any]:
        return {**inputs.template.variables, **inputs.var_values,
                **dict(self.graph.images[name].vars)}

    def _check_instance_types(self, name: str, inputs: Inputs, problems: Diagnostics) -> None:
        offered = known_instance_types()
        image = self.graph.images[name]
        found = instance_types(inputs.template, self._values(name, inputs))
        if image.tests and image.test_instance_type:
            found.append((f"{self.graph.file.name}: test_instance_type", image.test_instance_type))
        for path, value in found:
            if offered and value not in offered:
                problems.add(f"{path}: instance_type {value!r} is not an EC2 instance type"
                             + (did_you_mean(value, offered) or
                                " (botocore's EC2 model has no such type)"))

    def test_settings(self, name: str) -> TestSettings:
        """How an instance of the image's new AMI is launched for its tests:
        ``test_*`` in amis.yaml, else the template's own settings."""
        image = self.graph.images[name]
        inputs = self.checkout.inputs()[name]
        template, values = inputs.template, self._values(name, inputs)

        def first(key: str) -> str | None:
            found = builder_values(template, values, key)
            return found[0][1] if found else None

        instance_type = image.test_instance_type or first("instance_type")
        user = first("ssh_username")
        where = f"{self.graph.file.name}: image {name}"
        if not instance_type:
            raise AmiError(f"{where}: its tests need an instance type and the template's is "
                           "not known before the build: set test_instance_type")
        if not user:
            raise AmiError(f"{where}: its tests log in over SSH as the template's ssh_username, "
                           f"which {template.path} does not set to a value known before the "
                           "build: set ssh_username in its amazon-ebs source")
        group = image.test_security_group or first("security_group_id")
        return TestSettings(instance_type=instance_type, user=user,
                            subnet=image.test_subnet or first("subnet_id"),
                            security_group=group)

    def _check_regions(self, name: str, problems: Diagnostics) -> None:
        known = known_regions()
        for region in self.graph.images[name].regions:
            if region not in known:
                problems.add(f"{self.graph.file.name}: region {region!r} is not an AWS region"
                             + (did_you_mean(region, known) or
                                " (botocore's endpoint data has no such region)"))

    def _check_versions(self, template: Template, problems: Diagnostics,
                        version: str | None = None) -> None:
        """A template that needs a newer Packer than the installed one (or
        ``version``) stops before it is validated or built, with a line for
        each thing found, naming the file and line, and the version found."""
        if not (template.newer or template.required_version):
            return
        version = version or self.packers.version()
        root = Repo(self.graph.root)
        for path, what in template.newer if version_tuple(version) < INIT_SINCE else ():
            at = located_text(root, replace(template, files=(path,)), _WRITTEN.get(
                what, re.escape(what.removeprefix("amazon-ebs "))))
            problems.add(f"{at}: {what} needs Packer 1.7 or newer; found {version}: upgrade "
                         f"Packer, or {_INSTEAD.get(what, 'remove it')}")
        if template.required_version and not satisfies(version, template.required_version):
            problems.add(f"{template.path}: packer {{ required_version = "
                         f"\"{template.required_version}\" }} is not met by Packer {version}: "
                         "install a Packer that meets it")

    # -- validation ---------------------------------------------------------------

    def packer_reads(self, name: str, say: Callable[[str], None],
                     others: Sequence[str] = ()) -> None:
        """A template this tool could not read, handed to Packer's own parser
        (``packer validate -syntax-only``), whose word and line win over
        ours. Images sharing the template are answered by one run, shown
        once. Raises with Packer's first error and where it points, or, when
        Packer reads the template, says that the construct is ours to read;
        with the tree's ``others`` problems, so one run names them all."""
        template = self.graph.images[name].template
        with self._said_lock:
            said = self._packer_said.get(template)
            first = said is None
            if said is None:
                result = self.tools.run([self.packers.executable(), "validate", "-syntax-only",
                                         template], cwd=self.graph.root,
                                        env=with_tools({**self.settings.env,
                                                        "CHECKPOINT_DISABLE": "1"}))
                said = self._packer_said[template] = (result.ok, result.output)
                if not result.ok:
                    say(result.output.rstrip())
        ok, output = said
        if not first:
            raise AmiError(f"image {name}: its template, {template}, is the one above")
        if ok:
            raise AmiError.of([f"image {name}: {template}: Packer's parser reads it and this "
                               "tool's (python-hcl2) does not (doit plan says where): write "
                               "that construct another way", *others])
        problem, at = _problem(output)
        raise AmiError.of([f"image {name}: packer validate -syntax-only {template}: "
                           f"{problem or 'failed'}{', ' + at if at else ''} (Packer's own "
                           "parser; details above)", *others])

    def _run(self, argv: list[str], cwd: Path, what: str, say: Callable[[str], None],
             env: Mapping[str, str], mapped: Callable[[str], str] = lambda text: text) -> None:
        """Run a checker; on failure its output is shown (``mapped``: the
        stage's paths as the user's files) and its first error line is part
        of the one-line error."""
        result = self.tools.run(argv, cwd=cwd, env=with_tools(env))
        if not result.ok:
            output = mapped(result.output)
            say(output)
            problem, at = _problem(output)
            raise AmiError(f"{what} failed{': ' + problem if problem else ''}"
                           f"{', ' + at if at else ''} (details above)")

    def validate(self, name: str, say: Callable[[str], None],
                 step: Callable[[str], None] = lambda what: None) -> list[str]:
        """`packer fmt -check` on HCL2 files, `packer validate` on the template
        as the build hands it over, with the variables the build passes (the
        parent's AMI a placeholder), and `--syntax-check` of every playbook,
        the last two in the image's stage. Returns the checks that ran."""
        settings, graph = self.settings, self.graph
        spec = graph.images[name]
        inputs = self.checkout.inputs()[name]
        exe = self.packers.executable()
        variables = {**spec.packer_vars(), **build_variables(
            name, graph.region, spec.playbook, source_ami=_PLACEHOLDER_AMI,
            parent_image=spec.parent, digest="0" * 64,
            git={"branch": "validate", "commit": "validate", "dirty": False},
            build_time="validate", packer_version="validate")}
        env = {**settings.env, "CHECKPOINT_DISABLE": "1"}
        problems = Diagnostics()        # every checker runs: each failure is named
        checks = []
        step("packer fmt")
        with problems.collect():
            if self._fmt(exe, inputs.template.files, env, spec.packer_fmt, say):
                checks.append("packer fmt -check")
        checks.append("packer validate")
        with self.stager.prepared(name, variables, sandbox=False, endpoint=settings.endpoint,
                                  tags={"Image": name, "ManagedBy": MANAGED_BY},
                                  env=env) as job:
            step("packer validate")
            with problems.collect():
                self._run(job.argv(exe, "validate"), job.cwd, f"packer validate {spec.template}",
                          say, env=job.env,
                          mapped=lambda text: stage.to_user(text, job.root, graph.root))
            for playbook in inputs.ansible:
                if playbook.missing_roles:
                    roles = playbook.missing_roles
                    say(f"--syntax-check of {playbook.playbook} skipped: "
                        f"{'role' if len(roles) == 1 else 'roles'} {', '.join(roles)} "
                        f"{'comes' if len(roles) == 1 else 'come'} from a requirements file "
                        "at build time")
                    continue
                step(f"--syntax-check {playbook.playbook}")
                with problems.collect():
                    self._run([tool("ansible-playbook", settings.env), "--syntax-check", "-i",
                               "localhost,", str(job.root / playbook.playbook)],
                              job.root / playbook.cwd,
                              f"ansible-playbook --syntax-check {playbook.playbook}", say,
                              env=job.env)
                    checks.append(f"--syntax-check {playbook.playbook}")
            problems.check()            # inside: a failure keeps the stage, and says where
        return checks

    def _fmt(self, exe: str, files: tuple[str, ...], env: Mapping[str, str], mode: str,
             say: Callable[[str], None]) -> bool:
        """`packer fmt -check`, one file at a time (it takes one path). Whether
        there was an HCL2 file to check. ``mode`` "report" (a template the
        team did not write): differences are said, not fatal."""
        hcl_files = [f for f in files if f.endswith(".pkr.hcl")]
        unformatted = [path for path in hcl_files
                       if not self.tools.run([exe, "fmt", "-check", path], cwd=self.graph.root,
                                             env=with_tools(env)).ok]
        if unformatted:
            them = "them" if len(unformatted) > 1 else "it"
            if mode == "report":
                say(f"packer fmt -check: {', '.join(unformatted)} not in Packer's canonical "
                    "format (packer_fmt: report, so not fatal)")
            else:
                raise AmiError(f"packer fmt -check: {', '.join(unformatted)} not in Packer's "
                               f"canonical format: run packer fmt on {them}, or set "
                               "packer_fmt: report for a template you did not write")
        return bool(hcl_files)

    def lint(self, names: list[str], say: Callable[[str], None]) -> bool:
        """ansible-lint on these images' playbooks and the project's roles they
        use, with the project's settings. Third-party roles and collections
        are excluded, and roles installed from a requirements file at build
        time are mocked. False when there is nothing of the project's to lint."""
        root = self.graph.root
        inputs = [self.checkout.inputs()[n] for n in names]
        playbooks = sorted({r.playbook for i in inputs for r in i.ansible})
        if not playbooks:
            return False
        third_party = sorted({p for i in inputs for p in i.third_party})
        roles = sorted({folder for i in inputs for folder in i.roles.values()
                        if root.joinpath(folder).is_dir()
                        and not any(folder == t or folder.startswith(t + "/")
                                    for t in third_party)})
        mocked = sorted({name for i in inputs for r in i.ansible for name in r.missing_roles})
        project, own, ignore = lint_settings(root, playbooks[0])
        config = self._lint_config(project, own, third_party, mocked)
        self._run([tool("ansible-lint", self.settings.env), "--nocolor", "--offline", "-f", "pep8",
                   "--project-dir", str(root / project), "-c", str(config),
                   *(["-i", str(root / ignore)] if ignore else []), *playbooks, *roles],
                  root / project, "ansible-lint", say, self.settings.env,
                  mapped=lambda text: text if project == "." else
                  re.sub(r"(?m)^(?=[^\s:][^:]*:\d+: )", project + "/", text))
        return True

    def _lint_config(self, project: str, own: str | None, third_party: list[str],
                     mocked: list[str]) -> Path:
        """The repository's ansible-lint settings (its profile, rules and
        excludes, which are relative to its folder), plus what to leave out
        and what to mock. Named by its content: images lint at once."""
        root = self.graph.root
        data: dict = {}
        if own is not None:
            try:
                data = yaml.safe_load((root / own).read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as err:
                raise AmiError(f"{own}: cannot read ({err}): fix it") from None
            if not isinstance(data, dict):
                raise AmiError(f"{own}: must be a mapping of ansible-lint settings")
        excluded = [str(root / project / p) for p in data.get("exclude_paths") or []]
        excluded += [str(root / p) for p in third_party]
        data = {**data, "exclude_paths": excluded,
                "mock_roles": sorted({*(data.get("mock_roles") or []), *mocked})}
        text = yaml.safe_dump(data, sort_keys=True).encode()
        path = self.settings.state / f"ansible-lint-{hashlib.sha256(text).hexdigest()[:12]}.yml"
        write_atomic(path, text, durable=False)
        return path

    # -- doit validate ------------------------------------------------------------

    def check_image(self, name: str, say: Callable[[str, str | None], None]) -> None:
        """``doit validate:<image>``."""
        self.preflight(name)
        checks = self.validate(name, lambda text: say(text, name))
        say(f"{', '.join(checks)}: passed", name)

    def check_lint(self, say: Callable[[str], None]) -> None:
        """``doit validate:lint``."""
        if self.lint(list(self.graph.images), say):
            say("ansible-lint passed")
