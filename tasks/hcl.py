"""HCL2 Packer configurations: a ``.pkr.hcl`` file, a ``.pkr.json`` file
(HCL2's JSON syntax) or a folder of them (Packer's unit of configuration).

``.pkr.hcl`` is parsed with python-hcl2, which keeps every value as its HCL
source text: ``"\\"t3.small\\""`` is a quoted template, ``"${var.region}"``
a bare expression, numbers and booleans are themselves. ``.pkr.json`` is
brought to the same form, so one walk reads both. Values resolve the way
Packer resolves them before a build: ``var.x`` from defaults, var files and
``-var``, ``local.x``, ``path.root`` (the configuration's folder) and
``path.cwd`` (the folder Packer runs in); ``file()``, ``templatefile()``,
``fileset()`` and ``fileexists()`` read files, so their paths are inputs.
Anything else is only known during the build. The configuration Packer gets
is written in HCL2's JSON syntax (``.pkr.hcl`` files as ``.hcl.pkr.json``
copies), which needs no escaping of ours.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterator

from .errors import AmiError
from .refs import Repo, json_object, read_text

SUFFIXES = (".pkr.hcl", ".pkr.json")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_REF = re.compile(r"^(var|local|path)\.([A-Za-z_][A-Za-z0-9_-]*)$")
_FILE_CALL = re.compile(r"\b(file|templatefile|fileset|fileexists)\s*\(")
_OPEN = re.compile(r"\$\$\{|%%\{|\$\{|%\{")       # escapes first: $${ and %%{ are literal
_ENV_CALL = re.compile(r'^\$\{\s*env\(\s*"[^"]+"\s*\)\s*\}$')
VAR_FILE_SUFFIXES = (".pkrvars.hcl", ".pkrvars.json")
AUTO_VAR_FILES = (".auto.pkrvars.hcl", ".auto.pkrvars.json")
_ESCAPES = MappingProxyType({"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"})


def is_hcl(path: str) -> bool:
    return path.endswith(SUFFIXES)


@dataclass(frozen=True)
class Document:
    """One file of the configuration, parsed, in its own syntax."""
    path: str
    syntax: str                 # "hcl" or "json"
    data: dict


def files_of(repo: Repo, path: str, image: str) -> list[str]:
    """The configuration's files: the file itself, or a folder's *.pkr.hcl,
    *.pkr.json and *.auto.pkrvars.hcl / .json (Packer reads those by itself)."""
    if not repo.is_dir(path):
        return [path]
    names = sorted(p.name for p in repo.path(path).iterdir() if p.is_file())
    for name in names:
        if any("\udc80" <= c <= "\udcff" for c in name):
            raise AmiError(f"{path}: a file name that is not UTF-8 ({name!r}): rename it")
    found = [f"{path}/{n}" for n in names if n.endswith(SUFFIXES + AUTO_VAR_FILES)]
    for f in found:
        if f.endswith(".pkr.hcl") and json_name(f) in found:
            raise AmiError(f"{json_name(f)}: the name the build gives {f}'s JSON-syntax copy: "
                           "rename it")
    if not any(f.endswith(SUFFIXES) for f in found):
        raise AmiError(f"{path} (image {image}): a folder template needs *.pkr.hcl or *.pkr.json "
                       "files")
    return found


def parse(repo: Repo, rel: str, image: str = "") -> Document:
    return parse_text(rel, *source(repo, rel, image))


def source(repo: Repo, rel: str, image: str = "") -> tuple[str, str]:
    """A configuration file's text, and how errors name it."""
    shown = f"{rel} (image {image})" if image else rel
    return read_text(repo.path(rel), "template", shown), shown


def parse_text(rel: str, text: str, shown: str) -> Document:
    if rel.endswith(".json"):
        return Document(rel, "json", json_object(text, shown, "an HCL2 JSON configuration"))
    import hcl2
    from hcl2.utils import SerializationOptions
    try:
        data = hcl2.loads(text.removeprefix("\ufeff"), serialization_options=SerializationOptions(
            preserve_heredocs=True, with_comments=False))
    except Exception as err:           # python-hcl2 raises lark's many error types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise AmiError(f"{shown}: not valid HCL2, or a construct python-hcl2 cannot read "
                       f"({first}): run packer validate; if it passes, write the construct "
                       "another way") from None
    return Document(rel, "hcl", data)


# -- values --------------------------------------------------------------------

def unquote(text: str) -> str:
    """A quoted HCL template's text as HCL2's JSON syntax holds it: escapes
    undone in the literal parts only (``${...}`` and ``%{...}`` kept as
    written, and ``$${``); a heredoc's lines, each ending in a newline."""
    body = text[1:-1]
    if body.startswith("<<"):
        return _heredoc(body)
    return "".join(raw if interpolation else _unescape(raw) for raw, interpolation in _pieces(body))


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt in _ESCAPES:
                out.append(_ESCAPES[nxt])
                i += 2
                continue
            if nxt in "uU":
                width = 4 if nxt == "u" else 8
                try:
                    out.append(chr(int(text[i + 2:i + 2 + width], 16)))
                    i += 2 + width
                    continue
                except ValueError:
                    pass
        out.append(c)
        i += 1
    return "".join(out)


def _pieces(template: str) -> Iterator[tuple[str, bool]]:
    """A template as written, in pieces: literal text (``$${`` and ``%%{``
    escapes kept) and whole ``${...}`` / ``%{...}`` interpolations. An
    interpolation that never closes is literal text."""
    i = 0
    for m in _OPEN.finditer(template):
        if m.start() < i or m.group() in ("$${", "%%{"):
            continue
        end = _closing(template, m.end())
        if end < 0:
            break
        if m.start() > i:
            yield template[i:m.start()], False
        yield template[m.start():end + 1], True
        i = end + 1
    if i < len(template):
        yield template[i:], False


def _heredoc(body: str) -> str:
    """``<<EOT`` / ``<<-EOT`` text as python-hcl2 keeps it: the lines between
    the markers, each with its newline; ``<<-`` takes off the common indent."""
    first, _, rest = body.partition("\n")
    lines = rest.split("\n")[:-1]
    if first.startswith("<<-"):
        indent = min((len(line) - len(line.lstrip(" \t")) for line in lines if line.strip()),
                     default=0)
        lines = [line[indent:] for line in lines]
    return "".join(line + "\n" for line in lines)


def quote(text: str) -> str:
    """Template text back into a quoted HCL template (what ``unquote`` undoes)."""
    return '"' + "".join(raw if interpolation else _escape(raw)
                         for raw, interpolation in _pieces(text)) + '"'


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def is_template(value: Any) -> bool:
    return isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"'


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("${") and value.endswith("}") \
        and _closing(value, 2) == len(value) - 1


def _closing(text: str, start: int) -> int:
    """Index of the ``}`` closing the interpolation opened before ``start``."""
    return _end(text, start, "}")


def _end(text: str, start: int, stops: str) -> int:
    """Index of the first of ``stops`` from ``start`` outside brackets and
    quoted strings; -1 if there is none."""
    depth, i, in_string = 0, start, False
    while i < len(text):
        c = text[i]
        if in_string:
            if c == "\\":
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif depth == 0 and c in stops:
            return i
        elif c in "({[":
            depth += 1
        elif c in ")}]" and depth:
            depth -= 1
        i += 1
    return -1


def parts(template: str) -> Iterator[tuple[str, bool]]:
    """A template's literal text and its ``${...}`` interpolations, in order.
    A ``%{...}`` directive comes as an expression of its own (``%{if x}``),
    which nothing resolves."""
    literal = ""
    for raw, interpolation in _pieces(template):
        if not interpolation:
            literal += raw.replace("$${", "${").replace("%%{", "%{")
            continue
        if literal:
            yield literal, False
        literal = ""
        inner = raw[2:-1].strip()
        yield (inner if raw.startswith("$") else f"%{{{inner}}}"), True
    if literal:
        yield literal, False


class Scope:
    """What an expression may refer to before the build."""

    def __init__(self, values: dict[str, str | None], locals_: dict[str, Any],
                 root: str, cwd: str) -> None:
        self.values = values
        self.locals = locals_
        self.paths = {"root": root, "cwd": cwd}
        self._depth = 0

    def value(self, raw: Any) -> tuple[str | None, str, str]:
        """(the text, or None if it is only known during the build; a glob
        with ``*`` for the unknown parts; why it is unknown)."""
        if isinstance(raw, bool):
            return str(raw).lower(), str(raw).lower(), ""
        if isinstance(raw, (int, float)):
            return str(raw), str(raw), ""
        if is_expression(raw):
            return self.expression(raw[2:-1].strip())
        if is_template(raw):
            return self.template(unquote(raw))
        return None, "*", ("a list or an object is not one path" if isinstance(raw, (list, dict))
                           else f"{raw!r} is only known during the build")

    def template(self, text: str) -> tuple[str | None, str, str]:
        out, glob, why = [], [], []
        for piece, expr in parts(text):
            if not expr:
                out.append(piece)
                glob.append(piece)
                continue
            value, g, w = self.expression(piece)
            out.append(value or "")
            glob.append(g)
            if value is None:
                why.append(w)
        return ("".join(out) if not why else None), "".join(glob), "; ".join(why)

    def expression(self, expr: str) -> tuple[str | None, str, str]:
        if is_template(expr):
            return self.template(unquote(expr))
        m = _REF.match(expr)
        if not m:
            shown = expr if expr.startswith("%{") else f"${{{expr}}}"
            return None, "*", f"{shown} is only known during the build"
        kind, name = m.groups()
        if kind == "path":
            if name in self.paths:
                return self.paths[name], self.paths[name], ""
            return None, "*", f"path.{name} is not known before the build"
        if kind == "var":
            if name not in self.values:
                return None, "*", f"variable {name} is not declared"
            value = self.values[name]
            return (value, value, "") if value is not None else \
                (None, "*", f"variable {name} is only known during the build")
        if name not in self.locals or self._depth > 10:
            return None, "*", f"local {name} is not known before the build"
        self._depth += 1
        try:
            return self.value(self.locals[name])
        finally:
            self._depth -= 1


def file_calls(raw: Any) -> Iterator[tuple[str, str]]:
    """(function, first argument) of every file(), templatefile(), fileset()
    and fileexists() call in a value: in its expressions, at any depth of a
    list or object, keys included."""
    if isinstance(raw, list):
        for item in raw:
            yield from file_calls(item)
    elif isinstance(raw, dict):
        for key, item in raw.items():
            yield from _calls_in(key if "${" in key else f"${{{key}}}")
            yield from file_calls(item)
    elif isinstance(raw, str):
        yield from _calls_in(raw)


def _calls_in(value: str) -> Iterator[tuple[str, str]]:
    text = unquote(value) if is_template(value) else value
    for expr, is_expr in parts(text):
        if not is_expr:
            continue
        for m in _FILE_CALL.finditer(expr):
            end = _end(expr, m.end(), ",)")
            end = end if end >= 0 else len(expr)
            if m.group(1) == "fileset" and expr[end:end + 1] == ",":
                after = _end(expr, end + 1, ",)")
                pattern = expr[end + 1:after if after >= 0 else len(expr)]
                if ".." in pattern:
                    raise AmiError(f"fileset({expr[m.end():end].strip()}, {pattern.strip()}): "
                                   "the pattern leaves the folder: put the folder in the "
                                   "first argument")
            yield m.group(1), expr[m.end():end].strip()


# -- the configuration's shape ---------------------------------------------------

def _labelled(node: Any) -> Iterator[tuple[str, Any]]:
    """(label, body) pairs of a block map, in either syntax."""
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, dict):
            for key, body in item.items():
                if key != "__is_block__":
                    yield key.strip('"'), body


def _bodies(node: Any) -> Iterator[dict]:
    for item in node if isinstance(node, list) else [node]:
        if isinstance(item, dict):
            yield item


def to_hcl_form(value: Any) -> Any:
    """A JSON-syntax value in python-hcl2's form: strings become quoted templates."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return [to_hcl_form(v) for v in value]
    if isinstance(value, dict):
        return {k: to_hcl_form(v) for k, v in value.items()}
    return value


def _config(document: Document, body: Any) -> dict:
    body = body[0] if isinstance(body, list) and len(body) == 1 else body
    if not isinstance(body, dict):
        return {}
    body = {k: v for k, v in body.items() if k != "__is_block__"}
    return to_hcl_form(body) if document.syntax == "json" else body


def _configs(document: Document, body: Any) -> Iterator[dict]:
    """Each body of a block: in JSON syntax one label may hold a list of them."""
    for item in body if isinstance(body, list) and len(body) > 1 else [body]:
        yield _config(document, item)


@dataclass
class Shape:
    variables: dict[str, str | None]
    sensitive: list[str]
    secrets: list[str]                                # strings in sensitive list/map defaults
    locals: dict[str, Any]
    sources: list[tuple[str, str, dict]]              # (type, name, config)
    provisioners: list[tuple[str, dict, dict]]        # (type, config, overrides), in order
    post_processors: list[tuple[str, dict]]
    required_version: str | None
    newer: list[tuple[str, str]]                      # (file, what) that needs Packer 1.7+


def shape(documents: list[Document]) -> Shape:
    s = Shape({}, [], [], {}, [], [], [], None, [])
    for doc in documents:
        if "templatefile(" in json.dumps(doc.data):
            s.newer.append((doc.path, "templatefile()"))
    for doc in documents:
        data = doc.data
        for name, body in _labelled(data.get("variable", [])):
            cfg = _config(doc, body)
            default = cfg.get("default")
            s.variables[name] = literal(default)
            if cfg.get("sensitive") in (True, "true", '"true"'):
                s.sensitive.append(name)
                if isinstance(default, (list, dict)):
                    s.secrets += _leaves(default)
            text = unquote(default) if is_template(default) else default
            if isinstance(text, str) and _ENV_CALL.match(text):
                s.variables[name] = text          # an env default: resolved for masking only
        for body in _bodies(data.get("locals", [])):
            s.locals.update(_config(doc, body))
        for kind, body in _labelled(data.get("source", [])):
            for name, cfg in _labelled(body):
                if not isinstance(cfg, (dict, list)):
                    raise AmiError(f"{doc.path}: source \"{kind}\" needs a type and a name: "
                                   f"source \"{kind}\" \"NAME\" {{ ... }}")
                s.sources += [(kind, name, c) for c in _configs(doc, cfg)]
        for build in _bodies(data.get("build", [])):
            # build { source "amazon-ebs.x" { ... } } sets more of a source's fields
            for label, body in _labelled(build.get("source", [])):
                kind, _, name = label.removeprefix("source.").partition(".")
                s.sources += [(kind, name, c) for c in _configs(doc, body)]
            for kind, body in _labelled(build.get("provisioner", [])):
                for cfg in _configs(doc, body):
                    overrides = cfg.pop("override", None)
                    overrides = overrides if isinstance(overrides, dict) else {}
                    s.provisioners.append((kind, cfg, {k.strip('"'): v for k, v in overrides.items()
                                                       if isinstance(v, dict)}))
            for kind, body in _labelled(build.get("post-processor", [])):
                s.post_processors += [(kind, c) for c in _configs(doc, body)]
            for group in _bodies(build.get("post-processors", [])):
                for kind, body in _labelled(group.get("post-processor", [])):
                    s.post_processors += [(kind, c) for c in _configs(doc, body)]
        for packer in _bodies(data.get("packer", [])):
            cfg = _config(doc, packer)
            version = cfg.get("required_version")
            if is_template(version):
                s.required_version = unquote(version)
            if "required_plugins" in packer:
                s.newer.append((doc.path, "packer { required_plugins }"))
    return s


def _leaves(value: Any) -> list[str]:
    if isinstance(value, list):
        return [leaf for v in value for leaf in _leaves(v)]
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    text = literal(value)
    return [text] if text else []


def literal(value: Any) -> str | None:
    """A value's text when it is a literal string, number or bool; else None
    (an expression, a list, an object: not a path known before the build)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return str(value)
    if is_template(value) and "${" not in value and "%{" not in value:
        return unquote(value)
    return None


def var_file_values(repo: Repo, rel: str, image: str = "") -> dict[str, str | None]:
    """A ``.pkrvars.hcl`` (or ``.json``) var file's values: None for one that
    is not a literal (it is then only known during the build)."""
    doc = parse(repo, rel, image)
    values = doc.data if doc.syntax == "json" else {
        k: v for k, v in doc.data.items() if k != "__is_block__"}
    return {key: literal(to_hcl_form(value) if doc.syntax == "json" else value)
            for key, value in values.items()}


# -- the configuration Packer gets -----------------------------------------------------

def _set_tags(cfg: dict, key: str, tags: dict[str, str], syntax: str) -> None:
    existing = cfg.get(key)
    if isinstance(existing, dict):
        for k, v in tags.items():
            existing[k] = v if syntax == "json" else quote(v)
    elif existing is None:
        cfg[key] = dict(tags) if syntax == "json" else {k: quote(v) for k, v in tags.items()}
    else:
        inner = existing[2:-1] if is_expression(existing) else existing
        extra = ", ".join(f"{k} = {quote(v)}" for k, v in tags.items())
        cfg[key] = f"${{merge({inner}, {{{extra}}})}}"


def effective(documents: list[Document], *, regions: tuple[str, ...], endpoint: str | None,
              sandbox: bool, tags: dict[str, str],
              drop: Callable[[str], bool]) -> tuple[dict[str, bytes | None], list[str]]:
    """Each file as Packer gets it: copy regions, the endpoint, provenance tags
    and, in the sandbox, no communicator and none of the provisioners ``drop``
    says need one. Returns file -> content (None: remove the file; a
    ``.pkr.hcl`` file is replaced by its JSON-syntax copy), and the
    provisioners left out."""
    datas = [copy.deepcopy(doc.data) for doc in documents]
    added: dict[str, Any] = {}
    if len(regions) > 1:
        added["ami_regions"] = list(regions[1:])
    if endpoint:
        added.update(custom_endpoint_ec2=endpoint, skip_region_validation=True)
    if sandbox:
        added["communicator"] = "none"
    # A source block inside build that sets one of these fields: Packer refuses
    # the same field set twice, so the value goes there instead.
    nested: dict[str, list[tuple[dict, str]]] = {}
    for doc, data in zip(documents, datas):
        for build in _bodies(data.get("build", [])):
            for label, body in _labelled(build.get("source", [])):
                for cfg in _bodies(body):
                    nested.setdefault(label.removeprefix("source."), []).append((cfg, doc.syntax))
    for doc, data in zip(documents, datas):
        for kind, body in _labelled(data.get("source", [])):
            if kind != "amazon-ebs":
                continue
            for name, cfgs in _labelled(body):
                for cfg in _bodies(cfgs):
                    others = nested.get(f"{kind}.{name}", [])
                    for key in [*added, "tags", "snapshot_tags"]:
                        for target, syntax in [o for o in others if key in o[0]] or [(cfg, doc.syntax)]:
                            if key in added:
                                target[key] = _in_syntax(added[key], syntax)
                            else:
                                _set_tags(target, key, tags, syntax)
    out: dict[str, bytes | None] = {}
    dropped: list[str] = []
    index = 0
    for doc, data in zip(documents, datas):
        for build in _bodies(data.get("build", [])):
            if "provisioner" not in build:
                continue
            kept = []
            for kind, item in _one_by_one(build["provisioner"]):
                index += 1
                if sandbox and drop(kind):
                    dropped.append(f"provisioner {index} ({kind})")
                else:
                    kept.append(item)
            if kept:
                build["provisioner"] = kept
            else:
                del build["provisioner"]
        if doc.syntax == "hcl":
            # Written in HCL2's JSON syntax, which needs no escaping of ours.
            data = _json_syntax(data)
            for variables in _bodies(data.get("variable", [])):
                for _, variable in _labelled(variables):
                    for spec in _bodies(variable):
                        if is_expression(spec.get("type")):
                            spec["type"] = spec["type"][2:-1].strip()   # string, list(string)
            out[doc.path] = None
        out[json_name(doc.path)] = (json.dumps(data, indent=2) + "\n").encode()
    return out, dropped


def _in_syntax(value: Any, syntax: str) -> Any:
    if isinstance(value, list):
        return [_in_syntax(v, syntax) for v in value]
    return quote(value) if isinstance(value, str) and syntax == "hcl" else value


def _one_by_one(provisioners: Any) -> list[tuple[str, Any]]:
    """(type, block) for each provisioner, in order: JSON syntax may put
    several types in one object, or several bodies under one type."""
    out: list[tuple[str, Any]] = []
    for item in provisioners if isinstance(provisioners, list) else [provisioners]:
        if not isinstance(item, dict):
            out.append(("?", item))
            continue
        marker = {"__is_block__": True} if "__is_block__" in item else {}
        for label, body in item.items():
            if label == "__is_block__":
                continue
            bodies = body if isinstance(body, list) and len(body) > 1 else [body]
            out += [(label.strip('"'), {label: b, **marker}) for b in bodies]
    return out


def json_name(path: str) -> str:
    """Where the JSON-syntax copy of a ``.pkr.hcl`` file goes (beside it)."""
    return path[:-len(".pkr.hcl")] + ".hcl.pkr.json" if path.endswith(".pkr.hcl") else path


def _json_syntax(node: Any) -> Any:
    """python-hcl2's form (quoted templates, ``${expr}``) as HCL2 JSON syntax."""
    if isinstance(node, dict):
        return {(unquote(k) if is_template(k) else k): _json_syntax(v)
                for k, v in node.items() if k != "__is_block__"}
    if isinstance(node, list):
        return [_json_syntax(v) for v in node]
    return unquote(node) if is_template(node) else node


# -- which Packer can read it ----------------------------------------------------

def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3]) or (0,)


def satisfies(version: str, constraint: str) -> bool:
    """Whether a Packer version meets a constraint such as ">= 1.7.0, < 2" or "~> 1.8"."""
    have = version_tuple(version)
    for part in constraint.split(","):
        m = re.match(r"\s*(>=|<=|!=|~>|>|<|=)?\s*v?([0-9][0-9.]*)\s*$", part)
        if not m:
            return False
        op, want_text = m.group(1) or "=", m.group(2)
        want = version_tuple(want_text)
        pad = max(len(have), len(want))
        h, w = have + (0,) * (pad - len(have)), want + (0,) * (pad - len(want))
        if op == "~>":
            fixed = want[:-1] if len(want) > 1 else want
            if not (h >= w and h[:len(fixed)] == fixed):
                return False
        elif not {"=": h == w, "!=": h != w, ">": h > w, ">=": h >= w, "<": h < w,
                  "<=": h <= w}[op]:
            return False
    return True
