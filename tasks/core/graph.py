"""The image graph: ``amis.yaml`` read, checked and put in build order.

Every mistake in the file is an :class:`AmiError` that names the file and
the image, so ``doit list`` prints one line instead of a traceback.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .diagnostics import Diagnostics
from .errors import AmiError
from .files import load_yaml
from .text import did_you_mean
from .names import ACCOUNT_RE, AMI_RE, NAME_RE, REGION_RE
from .settings import GRAPH_FILE

_VAR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")

_TOP_KEYS = frozenset({"region", "source", "defaults", "images"})
_SOURCE_KEYS = frozenset({"name", "ami", "owners", "name_pattern", "sandbox_ami"})
_IMAGE_KEYS = frozenset({"parent", "template", "playbook", "packer_dir", "var_files",
                         "extra_inputs", "regions", "vars", "max_age_days", "share_with",
                         "build_timeout", "only", "env_inputs", "host_inputs", "tests",
                         "test_instance_type", "test_subnet", "test_security_group",
                         "test_timeout", "packer_fmt"})
PACKER_FMT = ("check", "report")     # packer fmt differences: fatal, or only said
_DURATION_RE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*(s|m|h)?")
DEFAULT_BUILD_TIMEOUT = 2 * 3600.0      # seconds
DEFAULT_TEST_TIMEOUT = 15 * 60.0        # seconds: the instance answering, then its tests
_SUBNET_RE = re.compile(r"subnet-[0-9a-f]{8,17}")
_GROUP_RE = re.compile(r"sg-[0-9a-f]{8,17}")


@dataclass(frozen=True)
class Source:
    """The upstream image the tree starts from: pinned, or found by filter."""
    name: str
    ami: str | None = None
    owners: tuple[str, ...] = ()
    name_pattern: str | None = None
    sandbox_ami: str | None = None

    def spec(self, sandbox: bool) -> dict[str, Any]:
        """What the source resolves from, as recorded and digested."""
        if sandbox and self.sandbox_ami:
            return {"ami": self.sandbox_ami}
        if self.ami:
            return {"ami": self.ami}
        return {"owners": list(self.owners), "name_pattern": self.name_pattern}


@dataclass(frozen=True)
class Image:
    name: str
    parent: str
    template: str
    playbook: str | None                # None: the template provisions without Ansible
    regions: tuple[str, ...]
    packer_dir: str = "."               # the folder Packer runs in
    var_files: tuple[str, ...] = ()
    extra_inputs: tuple[str, ...] = ()
    vars: tuple[tuple[str, str], ...] = ()
    json_vars: frozenset[str] = frozenset()   # vars given as a list or map: their JSON text
    max_age_days: int | None = None     # rebuilt when older, so OS updates land
    share_with: tuple[str, ...] = ()    # accounts its AMIs may be shared with
    build_timeout: float = DEFAULT_BUILD_TIMEOUT   # seconds Packer may take
    only: str | None = None             # the one source it builds (Packer's -only)
    env_inputs: tuple[str, ...] = ()    # environment variables its template reads
    host_inputs: tuple[str, ...] = ()   # build host files Ansible reads by absolute path
    tests: tuple[str, ...] = ()         # testinfra files or folders, run on each new AMI
    test_instance_type: str | None = None   # None: the template's
    test_subnet: str | None = None          # None: the template's, else the default VPC's
    test_security_group: str | None = None  # None: the template's, else a temporary one
    test_timeout: float = DEFAULT_TEST_TIMEOUT  # seconds to answer SSH and pass
    packer_fmt: str = "check"       # "report": packer fmt differences are said, not fatal

    def packer_vars(self) -> dict[str, Any]:
        """``vars:`` as Packer gets them, in a JSON var file: lists and maps as
        themselves, the rest as strings."""
        return {k: json.loads(v) if k in self.json_vars else v for k, v in self.vars}

    def settings(self, sandbox: bool) -> dict[str, Any]:
        """Build settings that change the image; part of its digest."""
        return {"regions": list(self.regions), "vars": dict(self.vars), "sandbox": sandbox,
                "packer_dir": self.packer_dir, "var_files": list(self.var_files),
                **({"only": self.only} if self.only else {}),
                **({"env_inputs": list(self.env_inputs)} if self.env_inputs else {}),
                **({"host_inputs": list(self.host_inputs)} if self.host_inputs else {})}


@dataclass(frozen=True)
class Graph:
    file: Path
    root: Path
    region: str
    source: Source
    images: dict[str, Image] = field(default_factory=dict)   # parents before children

    @property
    def names(self) -> list[str]:
        """Every node, the source first, then images parents-first."""
        return [self.source.name, *self.images]

    @property
    def width(self) -> int:
        """How many images can build at once at most: the tree's leaves."""
        parents = {i.parent for i in self.images.values()}
        return sum(1 for name in self.images if name not in parents)

    def children(self, name: str) -> list[str]:
        return [i.name for i in self.images.values() if i.parent == name]

    def descendants(self, name: str) -> list[str]:
        out: list[str] = []
        for child in self.children(name):
            out += [child, *self.descendants(child)]
        return out

    def ancestors(self, name: str) -> list[str]:
        chain = []
        while name in self.images:
            name = self.images[name].parent
            chain.append(name)
        return chain


def _fail(file: Path, where: str, problem: str) -> AmiError:
    return AmiError(f"{file.name}: {where}: {problem}")


def _no_unknown_keys(file: Path, where: str, data: dict, known: frozenset[str] | set[str]) -> None:
    unknown = sorted(str(k) for k in set(data) - set(known))
    if unknown:
        raise _fail(file, where, f"unknown key {unknown[0]!r}; "
                    + did_you_mean(unknown[0], known, "did you mean {!r}? ")
                    + f"known keys: {', '.join(sorted(known))}")


def _check_name(file: Path, name: Any, what: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise _fail(file, f"{what} {name!r}",
                    "names must match [a-z0-9_-]+ (no path separators, dots or spaces)")
    return name


def _str_list(file: Path, where: str, key: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(file, where, f"'{key}' must be a list of strings")
    return tuple(value)


def _repo_path(root: Path, file: Path, where: str, key: str, rel: str,
               must_exist: str | None = "file") -> str:
    """A path inside the repository, relative and without '..'; ``must_exist``
    is "file", "dir", "any" (either) or None."""
    p = Path(rel)
    if not rel or p.is_absolute() or ".." in p.parts or "\\" in rel:
        raise _fail(file, where, f"{key} {rel!r} must be a path inside the repository, "
                                 "relative and without '..'")
    check = {"file": Path.is_file, "dir": Path.is_dir, "any": Path.exists}.get(must_exist or "")
    try:
        there = check is None or check(root / p)
    except OSError as err:              # e.g. a name longer than the filesystem allows
        raise _fail(file, where, f"{key} {rel[:60]}…: cannot be used ({err.strerror})") from None
    if not there:
        raise _fail(file, where, f"{key} {rel} does not exist: create it or set '{key}:' "
                                 "to the right path")
    return p.as_posix()


def _parse_source(file: Path, data: Any) -> Source:
    if not isinstance(data, dict):
        raise _fail(file, "source", "must be a mapping with 'name' and either 'ami' "
                                    "or 'owners' + 'name_pattern'")
    _no_unknown_keys(file, "source", data, _SOURCE_KEYS)
    name = _check_name(file, data.get("name"), "source")
    where = f"source {name}"
    for key in ("ami", "sandbox_ami"):
        if data.get(key) is not None and not (isinstance(data[key], str) and AMI_RE.fullmatch(data[key])):
            raise _fail(file, where, f"{key} {data[key]!r} is not an AMI id (ami-xxxxxxxx)")
    owners = _str_list(file, where, "owners", data.get("owners"))
    pattern = data.get("name_pattern")
    if data.get("ami") and (owners or pattern):
        raise _fail(file, where, "give either 'ami' or 'owners' + 'name_pattern', not both")
    if not data.get("ami") and not (owners and isinstance(pattern, str) and pattern):
        raise _fail(file, where, "needs 'ami' (a pinned id) or 'owners' and 'name_pattern' "
                                 "(resolved to the newest match)")
    return Source(name=name, ami=data.get("ami"), owners=owners, name_pattern=pattern,
                  sandbox_ami=data.get("sandbox_ami"))


_DEFAULT_KEYS = _IMAGE_KEYS - {"parent", "playbook"}


def _defaults(file: Path, data: Any) -> dict[str, Any]:
    """Settings every image has unless it says otherwise."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise _fail(file, "defaults", "must be a mapping of image settings (template, ...)")
    _no_unknown_keys(file, "defaults", data, _DEFAULT_KEYS)
    return data


def _parse_image(root: Path, file: Path, name: str, data: Any, region: str,
                 defaults: dict[str, Any]) -> Image:
    where = f"image {name}"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _fail(file, where, "must be a mapping (parent, template, playbook, ...)")
    _no_unknown_keys(file, where, data, _IMAGE_KEYS)
    own, data = data, {**defaults, **data}
    parent = data.get("parent")
    if parent is None:
        raise _fail(file, where, "has no 'parent': name the source or another image")
    parent = _check_name(file, parent, f"{where}: parent")
    regions = _str_list(file, where, "regions", data.get("regions")) or (region,)
    for r in regions:
        if not REGION_RE.fullmatch(r):
            raise _fail(file, where, f"region {r!r} is not an AWS region name"
                        f"{_region_guess(r)}")
    if regions[0] != region:
        regions = (region, *[r for r in regions if r != region])
    raw_vars = data.get("vars") or {}
    if not isinstance(raw_vars, dict):
        raise _fail(file, where, "'vars' must be a mapping of Packer variable names to values")
    pairs = []
    json_vars = set()
    for key, value in sorted(raw_vars.items(), key=lambda kv: str(kv[0])):
        if not isinstance(key, str) or not _VAR_RE.fullmatch(key):
            raise _fail(file, where, f"variable name {key!r} is not a valid Packer variable name")
        if isinstance(value, (list, dict)):
            try:
                pairs.append((key, json.dumps(value, sort_keys=True)))
            except (TypeError, ValueError):
                raise _fail(file, where, f"variable {key}: a list or map of strings, numbers "
                            "and booleans only (it goes to Packer as JSON)") from None
            json_vars.add(key)
            continue
        if not isinstance(value, (str, int, float, bool)):
            raise _fail(file, where, f"variable {key} must be a string, a number, a list or a "
                        "map")
        pairs.append((key, str(value).lower() if isinstance(value, bool) else str(value)))
    max_age = data.get("max_age_days")
    if max_age is not None and (isinstance(max_age, bool) or not isinstance(max_age, int)
                                or max_age < 1):
        raise _fail(file, where, f"max_age_days {max_age!r} must be a whole number of days >= 1")
    for key in ("template", "playbook", "packer_dir", "only", "test_instance_type"):
        if key in data and not isinstance(data[key], str):
            raise _fail(file, where, f"'{key}' must be a string")
    accounts = data.get("share_with") or []
    if not isinstance(accounts, list):
        raise _fail(file, where, "'share_with' must be a list of AWS account ids")
    # an unquoted 12-digit id is a YAML number; True is not an account (bool is an int)
    share_with = _str_list(file, where, "share_with",
                           [str(a) if isinstance(a, int) and not isinstance(a, bool) else a
                            for a in accounts])
    for account in share_with:
        if not ACCOUNT_RE.fullmatch(account):
            raise _fail(file, where, f"share_with {account!r} is not an AWS account id "
                                     "(12 digits; quote it in YAML)")
    playbook = data.get("playbook")
    if playbook is None and (root / f"ansible/{name}_ami.yaml").is_file():
        playbook = f"ansible/{name}_ami.yaml"       # by convention; an image needs none
    template = data.get("template") or _conventional_template(root, name)
    if "template" in defaults and "template" not in own:
        for mine in (f"packer/{name}_ami.pkr.hcl", f"packer/{name}_ami.json"):
            if (root / mine).exists():
                raise _fail(file, where, f"{mine} exists, but the image builds from {template} "
                                         f"(defaults:): set 'template: {mine}' or remove the file")
    return Image(
        name=name,
        max_age_days=max_age,
        parent=parent,
        template=_repo_path(root, file, where, "template",
                            template, must_exist="any"),
        playbook=_repo_path(root, file, where, "playbook", playbook) if playbook else None,
        packer_dir=_repo_path(root, file, where, "packer_dir", data.get("packer_dir") or ".",
                              must_exist="dir"),
        regions=regions,
        var_files=tuple(_repo_path(root, file, where, "var_files", v)
                        for v in _str_list(file, where, "var_files", data.get("var_files"))),
        extra_inputs=tuple(_repo_path(root, file, where, "extra_inputs", v, must_exist=None)
                           for v in _str_list(file, where, "extra_inputs", data.get("extra_inputs"))),
        vars=tuple(pairs),
        json_vars=frozenset(json_vars),
        share_with=share_with,
        build_timeout=_duration(file, where, "build_timeout", data.get("build_timeout"),
                                DEFAULT_BUILD_TIMEOUT),
        only=data.get("only"),
        env_inputs=_env_names(file, where, data.get("env_inputs")),
        host_inputs=_host_paths(file, where, data.get("host_inputs")),
        tests=tuple(_repo_path(root, file, where, "tests", v, must_exist="any")
                    for v in _str_list(file, where, "tests", data.get("tests"))),
        test_instance_type=data.get("test_instance_type"),
        test_subnet=_aws_id(file, where, "test_subnet", data.get("test_subnet"), _SUBNET_RE,
                            "subnet-0123456789abcdef0"),
        test_security_group=_aws_id(file, where, "test_security_group",
                                    data.get("test_security_group"), _GROUP_RE,
                                    "sg-0123456789abcdef0"),
        test_timeout=_duration(file, where, "test_timeout", data.get("test_timeout"),
                               DEFAULT_TEST_TIMEOUT),
        packer_fmt=_choice(file, where, "packer_fmt", data.get("packer_fmt", "check"),
                           PACKER_FMT),
    )


def _choice(file: Path, where: str, key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _fail(file, where, f"{key} {value!r}: choose {' or '.join(choices)}")
    return str(value)


def _aws_id(file: Path, where: str, key: str, value: Any, pattern: re.Pattern[str],
            example: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise _fail(file, where, f"{key} {value!r} is not an id such as {example}")
    return value


def _env_names(file: Path, where: str, value: Any) -> tuple[str, ...]:
    names = _str_list(file, where, "env_inputs", value)
    for name in names:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _fail(file, where, f"env_inputs {name!r} is not an environment variable name")
    return tuple(sorted(set(names)))


def _host_paths(file: Path, where: str, value: Any) -> tuple[str, ...]:
    paths = _str_list(file, where, "host_inputs", value)
    for path in paths:
        if not path.startswith("/") or os.path.normpath(path) != path:
            raise _fail(file, where, f"host_inputs {path!r} must be a normalised absolute path "
                                     "(/etc/pip.conf)")
    return tuple(sorted(set(paths)))


def _conventional_template(root: Path, name: str) -> str:
    """packer/NAME_ami.pkr.hcl, else the JSON template packer/NAME_ami.json;
    when neither exists, the HCL2 one is the one to create."""
    hcl2, legacy = f"packer/{name}_ami.pkr.hcl", f"packer/{name}_ami.json"
    return legacy if not (root / hcl2).exists() and (root / legacy).exists() else hcl2


def _duration(file: Path, where: str, key: str, value: Any, default: float) -> float:
    """``90m``, ``2h``, ``45s`` or a number of minutes, in seconds."""
    if value is None:
        return default
    m = _DURATION_RE.fullmatch(str(value).strip()) if not isinstance(value, bool) else None
    if not m or float(m.group(1)) <= 0:
        raise _fail(file, where, f"{key} {value!r} must be a duration such as 90m, "
                                 "2h or 300s")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, None: 60}[m.group(2)]


def _order(file: Path, source: str, images: dict[str, Image]) -> dict[str, Image]:
    """Parents before children; unknown parents and cycles are errors."""
    for image in images.values():
        if image.parent != source and image.parent not in images:
            raise _fail(file, f"image {image.name}",
                        f"unknown parent {image.parent!r}: declare it under 'images' or use "
                        f"the source {source!r}")
    ordered: dict[str, Image] = {}
    for name in sorted(images):
        path: list[str] = []
        node = name
        while node != source and node not in ordered:
            if node in path:
                cycle = " -> ".join(path[path.index(node):] + [node])
                raise _fail(file, f"image {node}", f"parent cycle {cycle}: one of them must "
                                                   f"build on {source!r} or a non-cyclic image")
            path.append(node)
            node = images[node].parent
        for n in reversed(path):
            ordered[n] = images[n]
    return ordered


def _region_guess(value: object) -> str:
    """What a region name with a typo at its end most likely meant
    (``us-east-1x``: did you mean us-east-1?), else an example."""
    text = value.strip().lower() if isinstance(value, str) else ""
    guess = next((text[:n] for n in range(len(text), 0, -1) if REGION_RE.fullmatch(text[:n])), "")
    return f": did you mean {guess}?" if guess else " (e.g. eu-west-1)"


def parse_graph(data: Any, file: Path, root: Path) -> Graph:
    """The image graph. Every problem of the file is named in one error:
    the region's, the source's, the defaults' and each image's."""
    if not isinstance(data, dict):
        raise AmiError(f"{file.name}: must be a mapping with 'region', 'source' and 'images'")
    problems = Diagnostics()
    unknown = set(data) - _TOP_KEYS
    if unknown:
        problems.add(f"{file.name}: unknown key {sorted(unknown)[0]!r}; "
                     f"known keys: {', '.join(sorted(_TOP_KEYS))}")
    region = data.get("region")
    if not isinstance(region, str) or not REGION_RE.fullmatch(region):
        problems.add(f"{file.name}: 'region' {region!r} is not an AWS region name"
                     f"{_region_guess(region)}")
        region = "eu-west-1"            # to go on checking the images
    source: Source | None = None
    with problems.collect():
        source = _parse_source(file, data.get("source"))
    raw_images = data.get("images")
    if not isinstance(raw_images, dict) or not raw_images:
        problems.add(f"{file.name}: 'images' must map image names to their settings")
        raw_images = {}
    defaults: dict = {}
    with problems.collect():
        defaults = _defaults(file, data.get("defaults"))
    images: dict[str, Image] = {}
    for name, spec in raw_images.items():
        with problems.collect():
            name = _check_name(file, name, "image")
            if source is not None and name == source.name:
                raise _fail(file, f"image {name}",
                            f"has the same name as the source {source.name!r}")
            images[name] = _parse_image(root, file, name, spec, region, defaults)
    problems.check()
    assert source is not None
    return Graph(file=file, root=root, region=region, source=source,
                 images=_order(file, source.name, images))


def load_graph(root: Path, filename: str = GRAPH_FILE) -> Graph:
    root = root.resolve()
    file = root / filename
    return parse_graph(load_yaml(file, "image graph"), file, root)
