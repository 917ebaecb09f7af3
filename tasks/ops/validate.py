"""Static checks that fail in seconds, before minutes of Packer:
``packer validate`` and ``ansible-playbook --syntax-check`` in the image's
stage (so they see exactly its inputs), and ``ansible-lint`` on the
project's own playbooks and roles (third-party roles are not held to the
project's profile)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable, Mapping

import yaml

from ..adapters import stage
from ..adapters.tools import tool, with_tools
from ..core.errors import AmiError
from ..core.files import write_atomic
from ..core.names import MANAGED_BY
from . import invocation
from .run import Run

LINT_CONFIG = ".ansible-lint"
_PLACEHOLDER_AMI = "ami-00000000"       # validate needs a value; no AMI is looked up


def _run(argv: list[str], cwd: Path, what: str, say: Callable[[str], None],
         env: Mapping[str, str], mapped: Callable[[str], str] = lambda text: text) -> None:
    """Run a checker; on failure its output is shown (``mapped``: the stage's
    paths as the user's files) and its first error line is part of the
    one-line error."""
    result = subprocess.run(argv, cwd=cwd, env=with_tools(env),
                            capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        output = mapped((result.stdout + result.stderr).strip())
        say(output)
        problem = next((line.strip(" *") for line in output.splitlines()
                        if "error" in line.lower() or line.lstrip().startswith("*")), "")
        at = next((line.strip().rstrip(":") for line in output.splitlines()
                   if line.strip().startswith("on ") and " line " in line), "")
        raise AmiError(f"{what} failed{': ' + problem if problem else ''}"
                       f"{', ' + at if at else ''} (details above)")


def image(run: Run, name: str, say: Callable[[str], None]) -> list[str]:
    """`packer fmt -check` on HCL2 files, `packer validate` on the template as
    the build hands it over, with the variables the build passes (the
    parent's AMI a placeholder), and `--syntax-check` of every playbook, the
    last two in the image's stage. Returns the checks that ran."""
    settings, graph = run.settings, run.graph
    spec = graph.images[name]
    inputs = run.checkout.inputs()[name]
    exe = run.packers.executable()
    variables = {**dict(spec.vars), **invocation.build_variables(
        name, graph.region, spec.playbook, source_ami=_PLACEHOLDER_AMI, parent_image=spec.parent,
        digest="0" * 64, git={"branch": "validate", "commit": "validate", "dirty": False},
        build_time="validate", packer_version="validate")}
    env = {**settings.env, "CHECKPOINT_DISABLE": "1"}
    checks = ["packer fmt -check"] if _fmt(run, exe, inputs.template.files, env) else []
    checks.append("packer validate")
    with invocation.prepared(run, name, variables, sandbox=False, endpoint=settings.endpoint,
                          tags={"Image": name, "ManagedBy": MANAGED_BY}, env=env) as job:
        _run(job.argv(exe, "validate"), job.cwd, f"packer validate {spec.template}", say,
             env=job.env, mapped=lambda text: stage.to_user(text, job.root, graph.root))
        for playbook in inputs.ansible:
            if playbook.missing_roles:
                say(f"--syntax-check of {playbook.playbook} skipped: "
                    f"{', '.join(playbook.missing_roles)} come from a requirements file at "
                    "build time")
                continue
            _run([tool("ansible-playbook", settings.env), "--syntax-check", "-i", "localhost,",
                  str(job.root / playbook.playbook)], job.root / playbook.cwd,
                 f"ansible-playbook --syntax-check {playbook.playbook}", say, env=job.env)
            checks.append(f"--syntax-check {playbook.playbook}")
    return checks


def _fmt(run: Run, exe: str, files: tuple[str, ...], env: Mapping[str, str]) -> bool:
    """`packer fmt -check`, one file at a time (it takes one path). Whether
    there was an HCL2 file to check."""
    unformatted = []
    hcl_files = [f for f in files if f.endswith(".pkr.hcl")]
    for path in hcl_files:
        result = subprocess.run([exe, "fmt", "-check", path], cwd=run.graph.root,
                                env=with_tools(env), capture_output=True, text=True,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            unformatted.append(path)
    if unformatted:
        raise AmiError(f"packer fmt -check: {', '.join(unformatted)} not in Packer's canonical "
                       f"format: run packer fmt on {'them' if len(unformatted) > 1 else 'it'}")
    return bool(hcl_files)


def lint(run: Run, names: list[str], say: Callable[[str], None]) -> bool:
    """ansible-lint on these images' playbooks and the project's roles they
    use, with the project's settings. Third-party roles and collections are
    excluded, and roles installed from a requirements file at build time are
    mocked. False when there is nothing of the project's to lint."""
    root = run.graph.root
    inputs = [run.checkout.inputs()[n] for n in names]
    playbooks = sorted({r.playbook for i in inputs for r in i.ansible})
    if not playbooks:
        return False
    third_party = sorted({p for i in inputs for p in i.third_party})
    roles = sorted({folder for i in inputs for folder in i.roles.values()
                    if root.joinpath(folder).is_dir()
                    and not any(folder == t or folder.startswith(t + "/") for t in third_party)})
    mocked = sorted({name for i in inputs for r in i.ansible for name in r.missing_roles})
    config = _lint_config(run, third_party, mocked)
    _run([tool("ansible-lint", run.settings.env), "--nocolor", "--offline", "--project-dir",
          str(root),
          "-c", str(config), *playbooks, *roles], root, "ansible-lint", say, run.settings.env)
    return True


def _lint_config(run: Run, third_party: list[str], mocked: list[str]) -> Path:
    """The project's .ansible-lint, plus what to leave out and what to mock."""
    root = run.graph.root
    own = root / LINT_CONFIG
    data: dict = {}
    if own.is_file():
        try:
            data = yaml.safe_load(own.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as err:
            raise AmiError(f"{LINT_CONFIG}: cannot read ({err}): fix it") from None
        if not isinstance(data, dict):
            raise AmiError(f"{LINT_CONFIG}: must be a mapping of ansible-lint settings")
    excluded = [str(root / p) for p in [*(data.get("exclude_paths") or []), *third_party]]
    data = {**data, "exclude_paths": excluded,
            "mock_roles": sorted({*(data.get("mock_roles") or []), *mocked})}
    path = run.settings.state / "ansible-lint.yml"
    write_atomic(path, yaml.safe_dump(data, sort_keys=True).encode())
    return path


def check_image(run: Run, name: str) -> None:
    """``doit validate:<image>``."""
    invocation.preflight(run, name)
    checks = image(run, name, lambda text: run.say(text, name))
    run.say(f"{', '.join(checks)}: passed", name)


def check_lint(run: Run) -> None:
    """``doit validate:lint``."""
    if lint(run, list(run.graph.images), run.say):
        run.say("ansible-lint passed")
