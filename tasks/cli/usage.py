"""Each task's options, read before doit reads them: ``doit gc --help``
prints the task's options with their defaults and an example, and a
mistake on the command line is one line naming what the user typed
(doit's own messages name internal parameters and print its parser's
state). Both stop the run before any task is loaded: 0 for help,
``MISTAKE`` for a mistake."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from ..core.errors import MISTAKE, AmiError
from ..core.text import did_you_mean

# doit's own commands: their arguments are doit's to read.
DOIT_COMMANDS = frozenset({"list", "help", "info", "clean", "forget", "ignore", "dumpdb",
                           "strace", "tabcompletion", "reset-dep", "auto"})
# doit's `run` options that take a value (before the task names).
_DOIT_VALUED = frozenset({"-f", "--file", "-d", "--dir", "--db-file", "--backend", "--codec-cls",
                          "--check_file_uptodate", "-n", "--process", "-P", "--parallel-type",
                          "-v", "--verbosity", "-r", "--reporter", "-o", "--output-file",
                          "--failure-verbosity", "--dep-file", "--seek-file"})


@dataclass(frozen=True)
class Option:
    name: str                 # the action's parameter
    long: str
    help: str
    default: Any = ""
    type: type = str
    short: str = ""
    choices: tuple[str, ...] = ()
    shown_default: str = ""   # when the default is worked out (the tree's leaves)

    def doit(self) -> dict[str, Any]:
        """doit's param dict."""
        param: dict[str, Any] = {"name": self.name, "long": self.long, "type": self.type,
                                 "default": self.default,
                                 "help": f"{self.help} (default: {self.default_text()})"}
        if self.short:
            param["short"] = self.short
        if self.choices:
            param["choices"] = tuple((c, "") for c in self.choices)
        return param

    def flags(self) -> str:
        value = "" if self.type is bool else f" {self.long.upper().replace('-', '_')}"
        return (f"-{self.short}, " if self.short else "    ") + f"--{self.long}{value}"

    def default_text(self) -> str:
        if self.shown_default:
            return self.shown_default
        if self.type is bool:
            return "off"
        return repr(self.default) if self.default == "" else f"{self.default:g}" \
            if isinstance(self.default, float) else str(self.default)


def check(argv: list[str], options: Mapping[str, tuple[Option, ...]], docs: Mapping[str, str],
          examples: Mapping[str, str], subtasks: Mapping[str, list[str]]) -> str | None:
    """Read the command line as doit will. Returns the help text to print
    when a task's ``--help`` was asked for; raises AmiError (MISTAKE) for an
    unknown task or option, or a value that does not parse."""
    args = argv[1:]
    if len(args) > 1 and args[0] == "help" and args[1].split(":")[0] in options:
        task = args[1]                      # `doit help gc` is `doit gc --help`
        return render_help(task, options.get(task.split(":")[0], ()), docs, examples)
    if args and args[0] in DOIT_COMMANDS:
        return None
    if args and args[0] == "run":
        args = args[1:]
    i = 0
    while i < len(args) and args[i].startswith("-"):      # doit's own run options
        i += 2 if args[i] in _DOIT_VALUED else 1
    task: str | None = None
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-"):
            task = _task(arg, options, subtasks)
            i += 1
            continue
        if arg in ("-h", "--help"):
            if task is None:
                return None                       # `doit --help`: doit's own
            return render_help(task, options.get(task.split(":")[0], ()), docs, examples)
        if task is None:
            i += 1
            continue
        i += _option(task, arg, args[i + 1] if i + 1 < len(args) else None,
                     options.get(task, ()) if ":" not in task else ())
    return None


def _task(name: str, options: Mapping[str, Any], subtasks: Mapping[str, list[str]]) -> str:
    base, sep, sub = name.partition(":")
    if not sep and ("/" in name or "." in name):
        return name                                # a target file: doit's to find
    if base not in options:
        raise AmiError(f"doit {name}: no such task{did_you_mean(base, options)} "
                       "(doit list shows every task)")
    if sep and base in subtasks and sub not in subtasks[base]:
        guess = did_you_mean(sub, subtasks[base], f": did you mean {base}:{{}}?")
        raise AmiError(f"doit {name}: no such image in amis.yaml{guess} "
                       f"(doit list --all shows every {base}:<image>)")
    return name


def _option(task: str, arg: str, following: str | None, known: tuple[Option, ...]) -> int:
    """Check one option of ``task``; returns how many arguments it took."""
    flag, eq, inline = arg.partition("=")
    found = next((o for o in known if flag in (f"--{o.long}", f"-{o.short}" if o.short else "")),
                 None)
    if found is None and not flag.startswith("--") and len(flag) > 2:
        found = next((o for o in known if o.short and flag[:2] == f"-{o.short}"), None)
        if found is not None:
            eq, inline = "=", flag[2:]                # -n4
    if found is None:
        longs = [f"--{o.long}" for o in known]
        guess = did_you_mean(flag, longs + [f"-{o.short}" for o in known if o.short]) or (
            f"; it takes {', '.join(longs)}" if longs else "; it takes no options")
        raise AmiError(f"doit {task}: unknown option {flag}{guess} (doit {task} --help)")
    if found.type is bool:
        if eq:
            raise AmiError(f"doit {task} {flag}: takes no value (it is on when given)")
        return 1
    value = inline if eq else following
    if value is None or (not eq and value.startswith("-") and found.type is str):
        raise AmiError(f"doit {task} {flag}: needs a value ({found.help})")
    _value(task, flag, value, found)
    return 1 if eq else 2


def _value(task: str, flag: str, value: str, option: Option) -> None:
    if option.choices and value not in option.choices:
        raise AmiError(f"doit {task} {flag} {value}: choose {' or '.join(option.choices)}"
                       + did_you_mean(value, option.choices, " (did you mean {}?)"))
    if option.type in (int, float):
        try:
            option.type(value)
        except ValueError:
            kind = "a whole number" if option.type is int else "a number"
            raise AmiError(f"doit {task} {flag} {value!r}: needs {kind}") from None


def render_help(task: str, options: tuple[Option, ...], docs: Mapping[str, str],
                examples: Mapping[str, str]) -> str:
    base = task.split(":")[0]
    usage = f"doit {task}" + "".join(
        f" [--{o.long}]" if o.type is bool else f" [--{o.long} {o.long.upper().replace('-', '_')}]"
        for o in options)
    lines = [usage, "", docs.get(base, "")]
    if options:
        width = max(len(o.flags()) for o in options)
        lines += ["", "options:"]
        lines += [f"  {o.flags():<{width}}  {o.help} (default: {o.default_text()})"
                  for o in options]
    if base in examples:
        lines += ["", "example:", f"  {examples[base]}"]
    return "\n".join(lines)


def stop(argv: list[str], options: Mapping[str, tuple[Option, ...]], docs: Mapping[str, str],
         examples: Mapping[str, str], subtasks: Mapping[str, list[str]]) -> None:
    """Print a task's help (exit 0) or a command-line mistake (exit MISTAKE)
    before doit parses the command line."""
    import sys
    try:
        shown = check(argv, options, docs, examples, subtasks)
    except AmiError as err:
        sys.stderr.write(f"ERROR: {err}\n")
        raise SystemExit(MISTAKE) from None
    if shown is not None:
        sys.stdout.write(shown + "\n")
        raise SystemExit(0)
