"""Which files an image is built from, and why each one.

Every file the build reads is an input of exactly the image that reads it:
the template and every file its builders, provisioners and post-processors
name; for Ansible, the playbooks and everything they read (see
``ansible``); the image's var files; its declared ``extra_inputs``. A
reference that cannot be resolved before the build stops the run with one
line, unless the files it may read are declared. Nothing here touches the
network or runs a program.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from ..core.diagnostics import Diagnostics
from ..core.errors import AmiError
from ..core.graph import Graph, Image
from ..core.names import RUNNER_VARIABLES
from . import formats
from .ansible import config as ansible_config, lookups, playbook as ansible_playbook
from .builder import public_problems, region_problems, sharing_problems
from .context import Context, base_values
from .hcl import narrow
from .hcl.parse import is_hcl, parse as parse_hcl
from .kinds import EBS_BUILDERS
from .repo import Found, Repo, covered
from .template import Parse, Template
from .walk import AnsibleUse, walk
from .where import located, located_text, located_variable, with_line


@dataclass(frozen=True)
class AnsibleRun:
    """A playbook as one provisioner (or amis.yaml) hands it to Ansible."""
    where: str
    playbook: str
    cwd: str
    config: str | None
    roles_paths: tuple[str, ...]
    missing_roles: tuple[str, ...]      # installed from a requirements file at build time
    collections_paths: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inputs:
    image: str
    files: dict[str, str]               # repository path -> why it is an input
    kind: str                           # "ansible" or "shell"
    template: Template
    ansible: tuple[AnsibleRun, ...] = ()
    roles: dict[str, str] = field(default_factory=dict)   # role name -> folder (or requirements file)
    third_party: frozenset[str] = frozenset()    # role and collection folders not linted
    dropped_in_sandbox: tuple[str, ...] = ()
    values: dict[str, str | None] = field(default_factory=dict)
    var_values: dict[str, str | None] = field(default_factory=dict)   # from its var files
    problems: tuple[str, ...] = ()      # what stops it from being built, each one line


def image_inputs(graph: Graph, image: Image, parse: Parse = parse_hcl) -> Inputs:
    """The image's inputs; an AmiError naming every problem found, if any.
    ``parse`` reads one HCL2 file (a run's :class:`ParseCache` remembers
    what it parsed)."""
    inputs = found_inputs(graph, image, parse)
    if inputs.problems:
        raise AmiError.of(inputs.problems)
    return inputs


def found_inputs(graph: Graph, image: Image, parse: Parse = parse_hcl) -> Inputs:
    """What the walk found, with every problem it met on the way in
    ``problems``: a check goes on after a problem, so that one run names
    them all. Raises only when there is no template to walk."""
    repo = Repo(graph.root)
    template = _only(formats.load(repo, image.template, image.name, parse), image)
    problems = Diagnostics()
    reads: list[tuple[str, str | None]] = []
    overridden: set[str] = set()
    with problems.collect():
        reads, overridden = _var_file_env_reads(repo, image)
    _check_environment(template, image, reads, overridden, problems)
    for key in sorted(image.json_vars) if template.format == "json" else ():
        problems.add(f"amis.yaml: image {image.name}: vars: {key} is a list or map, but a JSON "
                     f"template's variables are strings ({image.template}): write it as a "
                     "string (HCL2 templates take lists and maps)")
    for key, _ in image.vars:
        if key not in template.variables:
            problems.add(f"amis.yaml: image {image.name}: vars: {key} is not a variable "
                         f"{image.template} declares, so Packer would never see it: declare "
                         "it in the template or remove it")
    if "playbook" in template.variables and template.variables["playbook"] is None \
            and not image.playbook:
        problems.add(f"amis.yaml: image {image.name}: {image.template} needs a playbook "
                     f"(variable playbook has no default) and the image has none: create "
                     f"ansible/{image.name}_ami.yaml or set playbook:")
    var_values: dict[str, str | None] = {}
    for vf in image.var_files:
        with problems.collect():
            var_values.update(formats.read_var_file(repo, vf))
    for doc, name in _undeclared(template):
        at = located_text(repo, replace(template, files=(doc,)), r"var\." + name + r"\b")
        fix = " (the tree sets it)" if name in RUNNER_VARIABLES else \
            ", and set it under vars: or in a var file"
        problems.add(f'{at}: var.{name} is used but no variable "{name}" is declared, so '
                     f"Packer stops: declare it{fix}")
    for name in template.required:
        if name not in var_values and name not in dict(image.vars) \
                and name not in RUNNER_VARIABLES:
            problems.add(f"{located_variable(repo, template, name)}: variable {name} has no "
                         "default and nothing sets it, so Packer stops: set it in a var file "
                         f"(var_files: in {graph.file.name}), or under vars: of each image "
                         "built from this template")
    static = {"image": image.name, "region": graph.region, "parent_image": image.parent,
              **({"playbook": image.playbook} if image.playbook else {})}
    given: dict[str, str | None] = {k: (None if k in image.json_vars else v)
                                    for k, v in image.vars}     # a list names no path
    values = base_values(template, var_values, given, static)
    ctx = Context(repo, template.dir, image.packer_dir, values, template.format,
                  template.locals, frozenset(image.host_inputs))
    walked = walk(template, ctx)
    for problem in [*walked.problems.problems,
                    *region_problems(repo, template, values, graph.region, graph.file.name),
                    *public_problems(repo, template, values, graph.file.name),
                    *sharing_problems(repo, template, {**values, **image.packer_vars()},
                                      image.share_with, graph.file.name)]:
        problems.add(problem)
    _check_parent(template, ctx, image, problems)
    found = walked.found
    for vf in image.var_files:
        with problems.collect():
            repo.inside(vf)
            found.add(vf, "var file (amis.yaml)")
    runs, roles, third_party = _ansible(repo, image, walked.ansible, found, problems)
    declared = _extra_inputs(repo, graph, image, found, problems)
    _check_unresolved(repo, graph, image, found, declared, problems)
    return Inputs(image=image.name, files=dict(sorted(found.files.items())),
                  kind="ansible" if runs else "shell", template=template,
                  ansible=tuple(runs), roles=roles, third_party=frozenset(third_party),
                  dropped_in_sandbox=tuple(walked.dropped_in_sandbox), values=values,
                  var_values=var_values, problems=tuple(problems.problems))


def _only(template: Template, image: Image) -> Template:
    """The template with only the source the image builds: a template of
    several sources makes several AMIs, and an image records one."""
    names = sorted({b.name for b in template.blocks if b.kind in ("builder", "source")})
    word = "builder" if template.format == "json" else "source"
    chosen = image.only or (names[0] if len(names) == 1 else None)
    blocks = sum(1 for sources in template.builds if chosen in sources)
    if chosen and blocks > 1:
        raise AmiError(f"{template.path}: source {chosen} is in {blocks} build blocks, each "
                       f"making an AMI, and image {image.name} records one: keep it in one")
    if image.only is None:
        if len(names) > 1:
            raise AmiError(f"amis.yaml: image {image.name}: {template.path} has {len(names)} "
                           f"{word}s ({', '.join(names)}), each making an AMI: name the one it "
                           f"builds, e.g. only: {names[0]}")
        return template
    if image.only not in names:
        raise AmiError(f"amis.yaml: image {image.name}: only: {image.only} is not a {word} of "
                       f"{template.path} ({', '.join(names)})")
    # What -only builds: its source, and the blocks that run for it.
    blocks = tuple(b for b in template.blocks
                   if (b.name == image.only if b.kind in ("builder", "source")
                       else b.sources is None or image.only in b.sources))
    if template.format != "hcl2":
        return replace(template, blocks=blocks)
    read = narrow.relevant(list(template.documents), image.only)
    return replace(template, blocks=blocks,
                   files=tuple(f for f in template.files if f in read or not is_hcl(f)),
                   documents=tuple(d for d in template.documents if d.path in read))


def _var_file_env_reads(repo: Repo, image: Image) -> tuple[list[tuple[str, str | None]],
                                                           set[str]]:
    """(where, environment variable) of each environment read in the
    image's var files that Packer uses (a later var file, or the image's
    ``vars:``, that sets the same variable overrides it), and every variable
    the var files and ``vars:`` set (they override the template's defaults)."""
    reads: list[tuple[str, str | None]] = []
    later = {key for key, _ in image.vars}
    for vf in reversed(image.var_files):
        reads += [(f"{vf}: {name}", env) for name, env in formats.var_file_env_reads(repo, vf)
                  if name not in later]
        later |= formats.var_file_names(repo, vf)
    return reads, later


def _check_environment(template: Template, image: Image,
                       var_files: list[tuple[str, str | None]], overridden: set[str],
                       problems: Diagnostics) -> None:
    """What the build reads from its environment changes what is built: only
    the environment variables the image declares (their values' hashes are in
    its digest), wherever a default or a var file reads them, and no secret
    store, which no digest can see. ``var_files``: (where, environment
    variable) of each read in the image's var files; ``overridden``: the
    variables something sets, whose defaults Packer never reads."""
    stores = template.secret_stores()
    if stores:
        problems.add(f"{template.path}: {stores[0]}() reads a secret store during the build: what "
                     "it returns changes the image, but no digest can see it: read the value "
                     "from an environment variable instead and declare it under env_inputs: "
                     f"of image {image.name} in amis.yaml")
    reads = [(f"{template.path}: variable {variable} defaults to", name)
             for variable, name in template.env_reads() if variable not in overridden]
    reads += [(f"{where} is", name) for where, name in var_files]
    for where, name in reads:
        if name is None:
            problems.add(f"{where} an environment variable whose name is known only during "
                         "the build (env() of an expression), which no digest can see: name "
                         f"it literally and declare it under env_inputs: of image "
                         f"{image.name} in amis.yaml, or set the value in a var file")
        elif name not in image.env_inputs:
            problems.add(f"{where} environment variable {name}, which changes what is "
                         f"built: declare it under env_inputs: of image {image.name} in "
                         "amis.yaml (the hash of its value goes into the digest), or set the "
                         "value in a var file")


_PARENT = "ami-0parent0parent0"          # stands for the parent's AMI while resolving


def _check_parent(template: Template, ctx: Context, image: Image,
                  problems: Diagnostics) -> None:
    """Every AMI the template makes is built on the image's parent: its
    sources' ``source_ami`` is the variable the tree sets to the parent's AMI,
    and nothing else chooses one."""
    wanted = "{{user `source_ami`}}" if template.format == "json" else "var.source_ami"
    fix = f"set source_ami = {wanted} (the tree gives it the parent's AMI)"
    sources = [b for b in template.blocks if b.kind in ("builder", "source")
               and b.type in EBS_BUILDERS]
    given = replace(ctx, values={**ctx.values, "source_ami": _PARENT})
    for block in sources:
        def at(field: str) -> str:
            return f"{located(ctx.repo, template, block, field)}: {block.label}"
        if "source_ami_filter" in block.config:
            problems.add(f"{at('source_ami_filter')}: source_ami_filter chooses the AMI image "
                         f"{image.name} is built on, but it builds on its parent {image.parent}: "
                         f"remove source_ami_filter and {fix}")
        if "ami_name" in block.config and ctx.resolve(block.config["ami_name"])[0] is not None:
            problems.add(f"{at('ami_name')}: ami_name = {ctx.plain(block.config['ami_name'])!r} "
                         "is the same on every build, so the second build fails (AMI names are "
                         "unique): add " + _unique_name_fix(template))
        if "source_ami" in block.config and given.resolve(block.config["source_ami"])[0] != _PARENT:
            problems.add(f"{at('source_ami')}: source_ami = "
                         f"{ctx.plain(block.config['source_ami'])!r} is not the AMI of image "
                         f"{image.name}'s parent {image.parent}: {fix}")
    if not any("source_ami" in b.config for b in sources):
        problems.add(f"{template.path}: no source sets source_ami, so image {image.name} "
                     f"would not be built on its parent {image.parent}: {fix}")


_VAR_USE = re.compile(r"\bvar\.([A-Za-z_][A-Za-z0-9_-]*)")


def _undeclared(template: Template) -> list[tuple[str, str]]:
    """(file, name) of each ``var.name`` an HCL2 file uses that no file declares."""
    found = []
    for doc in template.documents:
        for name in sorted(set(_VAR_USE.findall(json.dumps(doc.data)))):
            if name not in template.variables:
                found.append((doc.path, name))
    return found


def _unique_name_fix(template: Template) -> str:
    declared = "build_time" in template.variables
    if template.format == "json":
        return ("{{timestamp}} or {{user `build_time`}} to it" if declared else
                "{{timestamp}} to it, or {{user `build_time`}} with a variable build_time "
                "declared (the tree sets it)")
    return ("${var.build_time} or ${uuidv4()} to it" if declared else
            '${uuidv4()} to it, or ${var.build_time} with a variable "build_time" declared '
            "(the tree sets it)")


def _ansible(repo: Repo, image: Image, uses: list[AnsibleUse], found: Found,
             problems: Diagnostics) -> tuple[list[AnsibleRun], dict[str, str], set[str]]:
    runs: list[AnsibleRun] = []
    roles: dict[str, str] = {}
    third_party: set[str] = set()
    walked: set[tuple[str, str | None]] = set()
    jobs = [(use, playbook) for use in uses for playbook in use.playbooks]
    if image.playbook and image.playbook not in {p for _, p in jobs}:
        jobs.append((None, image.playbook))
    for use, playbook in jobs:
        with problems.collect():
            ctx = ansible_config.Context(
                repo, image.packer_dir, roles_paths=list(use.roles_paths) if use else [],
                collections_paths=list(use.collections_paths) if use else [],
                role_folders=list(use.role_folders) if use else [],
                host_files=frozenset(image.host_inputs),
                extra_vars=dict(use.extra_vars) if use else {},
                hosts=use.hosts if use else None)
            for galaxy in use.galaxy_files if use else []:
                ctx.requirements.add_file(repo, galaxy)
            if use is None or use.type == "ansible":    # ansible-local reads the instance's cfg
                ansible_config.configure(ctx, found, use.config if use else None)
            result = ansible_playbook.Result()
            why = f"playbook ({use.where})" if use else "playbook (amis.yaml)"
            read = Found()                  # what this Ansible run reads, all of it checked
            try:
                ansible_playbook.walk_playbook(ctx, playbook, read, result, why)
                for problem in result.problems.problems:
                    problems.add(with_line(repo, problem))
                for role in ctx.role_folders:
                    repo.add_tree(read, role,
                                  f"role folder ({use.where if use else 'amis.yaml'})")
                checked = Diagnostics()
                with checked.collect():
                    lookups.check(repo, list(read.files),
                                  lookups.Allowed(env=frozenset(image.env_inputs),
                                                  host=frozenset(image.host_inputs)),
                                  frozenset(result.templated), frozenset(result.variables),
                                  frozenset(result.roles.values()))
                for problem in checked.problems:
                    problems.add(with_line(repo, problem))
            finally:                        # what it found so far is shown by `doit inputs`
                for path, reason in read.files.items():
                    found.add(path, reason)
            found.unresolved += read.unresolved
            installed = set(use.galaxy_files) if use else set()
            for role in sorted(r for r in result.missing_roles if r.count(".") < 2
                               and result.roles.get(r) not in installed):
                problems.add(f"{playbook}: role {role} is only pinned in "
                             f"{result.roles.get(role)}, which nothing installs at build time "
                             f"({use.where if use else 'no provisioner'} has no galaxy_file "
                             "naming it), so Ansible would not find it: set galaxy_file to it "
                             "in the provisioner, or vendor the role into the repository")
            roles.update(result.roles)
            third_party |= result.third_party
            third_party |= {p for name, p in result.roles.items()
                            if name in ctx.requirements.roles and repo.is_dir(p)}
            if (playbook, ctx.config) not in walked:
                walked.add((playbook, ctx.config))
                runs.append(AnsibleRun(
                    where=use.where if use else "amis.yaml", playbook=playbook,
                    cwd=image.packer_dir, config=ctx.config, roles_paths=tuple(ctx.roles_paths),
                    collections_paths=tuple(ctx.collections_paths),
                    missing_roles=tuple(sorted(result.missing_roles))))
    return runs, roles, third_party


def _extra_inputs(repo: Repo, graph: Graph, image: Image, found: Found,
                  problems: Diagnostics) -> set[str]:
    """The files extra_inputs names, added to ``found``."""
    declared: set[str] = set()
    for pattern in image.extra_inputs:
        if any(c in pattern for c in "*?["):
            matches = repo.glob(pattern)
        elif repo.is_dir(pattern):
            matches = repo.files_under(pattern)
        else:
            matches = [pattern] if repo.exists(pattern) else []
        if not matches:
            problems.add(f"{graph.file.name}: image {image.name}: extra_inputs {pattern!r} "
                         "matches no file: fix the path or remove it")
        for m in matches:
            declared.add(m)
            with problems.collect():
                repo.add_file(found, m, "extra_inputs (amis.yaml)", f"{graph.file.name}: image "
                              f"{image.name}: extra_inputs", m)
    return declared


def _check_unresolved(repo: Repo, graph: Graph, image: Image, found: Found,
                      declared: set[str], problems: Diagnostics) -> None:
    """A reference only known during the build is accepted when the files it
    may read are declared: every one of them is among the image's
    extra_inputs (being an input for another reason is not enough)."""
    for ref in found.unresolved:
        if ref.glob and covered(repo, ref.glob, declared):
            continue
        if ref.glob is None:
            problems.add(f"{ref.where} {ref.value!r}: cannot be resolved before the build "
                         f"({ref.why}) and may name a file outside the repository, which "
                         "no extra_inputs pattern covers: write the path literally, or "
                         "begin it inside the repository")
            continue
        problems.add(f"{ref.where} {ref.value!r}: cannot be resolved before the build "
                     f"({ref.why}): list the files it may read under extra_inputs of image "
                     f'{image.name} in {graph.file.name}, e.g. extra_inputs: ["{ref.glob}"]')
