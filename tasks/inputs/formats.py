"""The two template formats behind one face: JSON templates
(``packer_json``) and HCL2 configurations (``hcl``). Which one a path is,
how to read it and its var files, and the copy Packer gets."""

from __future__ import annotations

from ..core.errors import AmiError
from . import packer_json
from .hcl import config as hcl_config, effective as hcl_effective
from .hcl.parse import SUFFIXES, VAR_FILE_SUFFIXES, parse, var_file_values
from .hcl.syntax import texts
from .kinds import NEEDS_COMMUNICATOR
from .repo import Repo
from .template import Parse, Template, env_names


def load(repo: Repo, path: str, image: str, parse: Parse = parse) -> Template:
    """The image's template: a JSON template (``*.json``), or an HCL2 file
    (``*.pkr.hcl``, ``*.pkr.json``) or folder of them."""
    if repo.is_dir(path) or path.endswith(SUFFIXES):
        return hcl_config.load(repo, path, image, parse)
    if not path.endswith(".json"):
        raise AmiError(f"{path} (image {image}): a template's name ends in .pkr.hcl, "
                       ".pkr.json or .json (what Packer reads): rename it")
    return packer_json.load(repo, path, image)


def read_var_file(repo: Repo, path: str) -> dict[str, str | None]:
    """A var file's values: ``.pkrvars.hcl`` / ``.pkrvars.json`` (HCL2), else
    JSON; None for a value that is not a literal."""
    if path.endswith((".hcl",) + VAR_FILE_SUFFIXES):
        return var_file_values(repo, path)
    return packer_json.var_file_values(repo, path)


def var_file_env_reads(repo: Repo, path: str) -> list[tuple[str, str | None]]:
    """(variable, environment variable) for each value of a var file that
    reads the environment, anywhere in it (None: a name not known before the
    build). Packer fills in a JSON var file's ``{{env `X`}}``."""
    if path.endswith((".hcl",) + VAR_FILE_SUFFIXES):
        doc = parse(repo, path, "")
        data = doc.data
    else:
        data = packer_json.var_file_data(repo, path)
    return [(name, env) for name, value in data.items() if name != "__is_block__"
            for text in texts(value) for env in env_names(text)]


def var_file_names(repo: Repo, path: str) -> set[str]:
    """The variables a var file sets."""
    if path.endswith((".hcl",) + VAR_FILE_SUFFIXES):
        return {name for name in parse(repo, path, "").data if name != "__is_block__"}
    return set(packer_json.var_file_data(repo, path))


def effective(template: Template, *, regions: tuple[str, ...], endpoint: str | None,
              sandbox: bool, tags: dict[str, str],
              only: str | None = None) -> tuple[dict[str, bytes | None], list[str]]:
    """The template's files as Packer gets them, with what the tree decides
    filled in: copy regions, the EC2 endpoint, provenance tags and, in the
    sandbox, no communicator and no provisioner that needs one. Returns file
    -> content (None: remove the file), and the provisioners left out."""
    if template.format == "hcl2":
        return hcl_effective.effective(list(template.documents), regions=regions,
                                       endpoint=endpoint, sandbox=sandbox, tags=tags,
                                       drop=lambda kind: kind in NEEDS_COMMUNICATOR, only=only)
    return packer_json.effective(template, regions=regions, endpoint=endpoint,
                                 sandbox=sandbox, tags=tags, only=only)
