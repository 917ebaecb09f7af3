"""An HCL2 configuration read into a :class:`Template`: its files, the
variables they declare (with ``*.auto.pkrvars.*`` applied, as Packer
applies them), and its sources, provisioners (each override a block of its
own) and post-processors."""

from __future__ import annotations

import posixpath

from ...core.errors import AmiError
from ..kinds import EBS_BUILDERS
from ..repo import Repo
from ..template import Block, Parse, Template
from .parse import AUTO_VAR_FILES, SUFFIXES, files_of, var_file_values
from .shape import shape


def load(repo: Repo, path: str, image: str, parse: Parse) -> Template:
    """An HCL2 file (``*.pkr.hcl``, ``*.pkr.json``) or folder of them."""
    files = files_of(repo, path, image)
    documents = tuple(parse(repo, f, image) for f in files if f.endswith(SUFFIXES))
    found = shape(list(documents))
    blocks = [Block("source", i, kind, cfg, name=f"{kind}.{name}")
              for i, (kind, name, cfg) in enumerate(found.sources, 1)]
    for i, (kind, cfg, overrides, runs_for) in enumerate(found.provisioners, 1):
        blocks.append(Block("provisioner", i, kind, cfg, sources=runs_for))
        blocks += [Block("provisioner", i, kind, {**cfg, **hcl_override}, f" override {source}",
                         sources=runs_for)
                   for source, hcl_override in sorted(overrides.items())]
    blocks += [Block("post-processor", i, kind, cfg, sources=runs_for)
               for i, (kind, cfg, runs_for) in enumerate(found.post_processors, 1)]
    blocks += [Block(d.block, i, d.type, d.content, each=d, sources=runs_for)
               for i, (d, runs_for) in enumerate(found.dynamic, 1)]
    if not any(b.kind == "source" and b.type in EBS_BUILDERS for b in blocks):
        raise AmiError(f"{path} (image {image}): no amazon-ebs source: image {image} needs one")
    variables = dict(found.variables)
    for auto in (f for f in files if f.endswith(AUTO_VAR_FILES)):
        variables.update({k: v for k, v in var_file_values(repo, auto, image).items()
                          if k in variables})
    return Template(path=path, format="hcl2", files=tuple(files),
                    dir=path if repo.is_dir(path) else (posixpath.dirname(path) or "."),
                    variables=variables, required=tuple(found.required),
                    sensitive=tuple(found.sensitive),
                    secrets=tuple(found.secrets),
                    blocks=tuple(blocks), documents=documents, locals=found.locals,
                    required_version=found.required_version, newer=tuple(found.newer),
                    builds=tuple(found.builds))
