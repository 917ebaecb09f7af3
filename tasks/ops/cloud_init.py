"""Cloud-init user-data, rendered per image and environment from Jinja2.

``cloud-init/vars.yaml`` holds ``defaults`` and one mapping per
environment; ``cloud-init/templates/<image>.yaml.j2`` is an image's
user-data. A variable a template uses but no environment defines is an
error naming both (StrictUndefined), never an empty string. Values that
look like secrets are refused: hosts read secrets from SSM at boot.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from ..adapters.tools import Tools, find
from ..core.errors import AmiError
from ..core.files import load_yaml, write_atomic

VARS_FILE = "cloud-init/vars.yaml"
TEMPLATES = "cloud-init/templates"

# Modules this project's user-data may use; an unknown key is a typo.
CLOUD_CONFIG_KEYS = frozenset({
    "bootcmd", "runcmd", "write_files", "packages", "package_update", "package_upgrade",
    "users", "groups", "timezone", "hostname", "fqdn", "preserve_hostname", "ntp",
    "mounts", "swap", "final_message", "power_state", "yum_repos", "ssh_pwauth",
    "disable_root", "locale", "manage_etc_hosts", "write_metadata", "merge_how",
})
_SECRET_NAME = re.compile(r"(pass(word)?|secret|token|api_?key|private_?key|credential)", re.I)
_SECRET_VALUE = (
    (re.compile(r"\bAKIA[0-9A-Z]{16}\b"), "an AWS access key id"),
    (re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"), "a private key"),
    (re.compile(r"\b[0-9a-f]{32}\b"), "a 32-hex-digit key (Datadog API keys look like this)"),
    (re.compile(r"\bbkua_[A-Za-z0-9]{20,}\b"), "a Buildkite token"),
)


def _check_no_secret_vars(data: Any, where: str, path: str = "") -> None:
    """Only SSM parameter *names* may be configured for secrets."""
    if isinstance(data, dict):
        for key, value in data.items():
            here = f"{path}.{key}" if path else str(key)
            in_ssm_names = path.endswith("ssm_parameters") or str(key).endswith("_parameter")
            if _SECRET_NAME.search(str(key)) and not in_ssm_names and not isinstance(value, dict):
                raise AmiError(f"{where}: {here} looks like a secret: put its value in SSM "
                               "Parameter Store and its name under ssm_parameters")
            _check_no_secret_vars(value, where, here)


def load_environments(root: Path) -> dict[str, dict[str, Any]]:
    """Environment name -> its variables (defaults overlaid by its own)."""
    where = VARS_FILE
    data = load_yaml(root / VARS_FILE, "cloud-init variables") or {}
    if not isinstance(data, dict) or not isinstance(data.get("environments"), dict) \
            or not data["environments"]:
        raise AmiError(f"{where}: needs 'environments:' mapping each environment to its variables")
    defaults = data.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise AmiError(f"{where}: 'defaults' must be a mapping")
    _check_no_secret_vars(data, where)
    envs = {}
    for name, values in data["environments"].items():
        if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9_-]+", name):
            raise AmiError(f"{where}: environment {name!r}: names must match [a-z0-9_-]+")
        if not isinstance(values, dict):
            raise AmiError(f"{where}: environment {name}: must be a mapping of variables")
        envs[name] = {**defaults, **values}
    return envs


def templated_images(root: Path, images: list[str]) -> list[str]:
    """The images that have user-data (a template named after them)."""
    return [i for i in images if (root / TEMPLATES / f"{i}.yaml.j2").is_file()]


def template_files(root: Path) -> list[str]:
    folder = root / TEMPLATES
    return sorted(p.relative_to(root).as_posix() for p in folder.glob("*.j2") if p.is_file())


def render(root: Path, image: str, environment: str, variables: dict[str, Any]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(root / TEMPLATES)),
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                             autoescape=False)
    name = f"{image}.yaml.j2"
    where = f"{TEMPLATES}/{name}"
    try:
        return env.get_template(name).render({**variables, "image": image,
                                              "environment": environment})
    except jinja2.UndefinedError as err:
        raise AmiError(f"{where}: {err} in environment {environment}: define it in "
                       f"{VARS_FILE} (defaults or environments.{environment})") from None
    except jinja2.TemplateSyntaxError as err:
        raise AmiError(f"{TEMPLATES}/{err.name or name}: line {err.lineno}: {err.message}") from None
    except jinja2.TemplateNotFound as err:
        raise AmiError(f"{where}: template {err.name} not found in {TEMPLATES}/") from None


def check(text: str, where: str) -> dict[str, Any]:
    """Valid cloud-config with no secret values in it, or an AmiError."""
    if not text.startswith("#cloud-config\n"):
        raise AmiError(f"{where}: user-data must start with a '#cloud-config' line")
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark else ""
        raise AmiError(f"{where}:{line}: rendered user-data is not valid YAML") from None
    if not isinstance(data, dict):
        raise AmiError(f"{where}: rendered user-data must be a YAML mapping")
    unknown = sorted(set(data) - CLOUD_CONFIG_KEYS)
    if unknown:
        raise AmiError(f"{where}: unknown cloud-config key {unknown[0]!r}")
    for i, entry in enumerate(data.get("write_files") or []):
        if not isinstance(entry, dict) or not entry.get("path") or "content" not in entry:
            raise AmiError(f"{where}: write_files entry {i + 1} needs 'path' and 'content'")
    if not isinstance(data.get("runcmd", []), list):
        raise AmiError(f"{where}: runcmd must be a list")
    for number, line in enumerate(text.splitlines(), 1):
        for pattern, what in _SECRET_VALUE:
            if pattern.search(line):
                raise AmiError(f"{where}: line {number} holds what looks like {what}: "
                               "keep secrets in SSM and read them at boot")
    return data


def schema_check(path: Path, env: Mapping[str, str], tools: Tools) -> None:
    """``cloud-init schema``, where cloud-init is installed."""
    exe = find("cloud-init", env)
    if not exe:
        return
    result = tools.run([exe, "schema", "--config-file", str(path)], cwd=path.parent)
    if not result.ok:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise AmiError(f"{path}: cloud-init schema: {detail[-1] if detail else 'invalid'}")


def render_to(root: Path, image: str, environment: str, target: Path,
              env: Mapping[str, str], tools: Tools) -> None:
    """``doit cloud_init:<environment>/<image>``: render, check, write."""
    text = render(root, image, environment, load_environments(root)[environment])
    check(text, f"{TEMPLATES}/{image}.yaml.j2 ({environment})")
    write_atomic(target, text.encode())
    schema_check(target, env, tools)
