"""What a template's amazon-ebs sources (or builders) set, as far as it is
known offline, and the checks on it that need no AWS: the region it
builds in, and whether it makes its AMI public."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any, Iterator, Mapping

from .repo import Repo
from .template import Template
from .where import located_text

_VAR_REF = re.compile(r'^"?\$\{var\.([A-Za-z0-9_-]+)\}"?$|^\{\{\s*user `([^`]+)`\s*\}\}$')


def instance_types(template: Template, values: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(file, instance type) of each builder, where it is known offline: a
    literal, or a variable given a value (amis.yaml, a var file, a default)."""
    return builder_values(template, values, "instance_type")


def builder_values(template: Template, values: Mapping[str, Any], key: str) -> list[tuple[str, str]]:
    """(file, value) of ``key`` in each amazon-ebs source or builder, where
    it is known offline: a literal, or a variable given a value."""
    known = []
    for path, value in _written(template, key):
        if not isinstance(value, str):
            continue
        ref = _VAR_REF.match(value.strip())
        if ref:
            value = values.get(ref.group(1) or ref.group(2))
            if not isinstance(value, str):
                continue
        value = value.strip().strip('"')
        if value and not any(c in value for c in "${}`"):
            known.append((path, value))
    return known


def listed(template: Template, values: Mapping[str, Any],
           key: str) -> list[tuple[str, list[str]]]:
    """(file, items) of each amazon-ebs source or builder's ``key`` (a list:
    ami_groups, ami_users, snapshot_users), as far as it is known offline (a
    list, or a variable holding one)."""
    known = []
    for path, value in _written(template, key):
        if isinstance(value, str) and (ref := _VAR_REF.match(value.strip())):
            value = values.get(ref.group(1) or ref.group(2))
        items = value if isinstance(value, list) else \
            value.split(",") if isinstance(value, str) else []
        known.append((path, [str(i).strip().strip('"') for i in items
                             if "${" not in str(i) and "{{" not in str(i)]))
    return known


def _written(template: Template, key: str) -> list[tuple[str, Any]]:
    """(file, value as written) of ``key`` in each source (HCL2) or builder (JSON)."""
    found: list[tuple[str, Any]] = [(doc.path, body[key]) for doc in template.documents
                                    for body in _sources(doc.data) if key in body]
    for builder in template.data.get("builders", []) if template.data else []:
        if isinstance(builder, dict) and key in builder:
            found.append((template.path, builder[key]))
    return found


def _sources(data: Any) -> Iterator[dict]:
    """The body of every ``source "type" "name"`` block of an HCL document
    (python-hcl2 gives a list of them, a .pkr.json file a mapping)."""
    blocks = data.get("source") if isinstance(data, dict) else None
    for block in blocks if isinstance(blocks, list) else [blocks]:
        for kinds in block.values() if isinstance(block, dict) else ():
            for body in kinds.values() if isinstance(kinds, dict) else ():
                if isinstance(body, dict):
                    yield body


def _at(repo: Repo, template: Template, path: str, key: str) -> str:
    return located_text(repo, replace(template, files=(path,)), rf'^\s*"?{key}"?\s*[=:]')


def region_problems(repo: Repo, template: Template, values: Mapping[str, Any], region: str,
                    tree_file: str) -> list[str]:
    """Every amazon-ebs source builds in the tree's region, where the
    parent's AMI is: another region fails at launch with
    InvalidAMIID.NotFound, naming neither."""
    wanted = "{{user `region`}}" if template.format == "json" else "var.region"
    return [f"{_at(repo, template, path, 'region')}: region {value!r} is not the tree's region "
            f"{region} ({tree_file}), where the parent's AMI is, so the build would not find "
            f"it: set region = {wanted} (the tree passes its region)"
            for path, value in builder_values(template, values, "region") if value != region]


def public_problems(repo: Repo, template: Template, values: Mapping[str, Any],
                    tree_file: str) -> list[str]:
    """An AMI shared with every AWS account (``ami_groups = ["all"]``)."""
    return [f'{_at(repo, template, path, "ami_groups")}: ami_groups includes "all", which makes '
            f"the AMI public: remove it, and share with accounts under share_with: in {tree_file}"
            for path, groups in listed(template, values, "ami_groups") if "all" in groups]


def sharing_problems(repo: Repo, template: Template, values: Mapping[str, Any],
                     share_with: tuple[str, ...], tree_file: str) -> list[str]:
    """An AMI or its snapshots shared, before the build, with an account
    ``share_with`` does not list: the build would be revoked after Packer made it."""
    problems = []
    for key in ("ami_users", "snapshot_users"):
        for path, accounts in listed(template, values, key):
            others = [a for a in accounts if a and a not in share_with]
            if others:
                problems.append(f"{_at(repo, template, path, key)}: {key} shares with "
                                f"{', '.join(others)}, which share_with: in {tree_file} does "
                                f"not list, so the build would be revoked after Packer made it: "
                                "add the account to share_with, or remove it")
    return problems
