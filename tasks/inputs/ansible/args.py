"""The files and variables that ansible-playbook's own arguments name."""

from __future__ import annotations

import shlex


def extra_argument_files(args: list[str]) -> list[tuple[str, str]]:
    """Files that ansible-playbook arguments name: ``-e @vars.yml``,
    ``--extra-vars=@f``, ``-i inventory``, ``-M library``."""
    found = []
    i = 0
    while i < len(args):
        arg = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else ""
        for flags in (("-e", "--extra-vars"), ("-i", "--inventory", "--inventory-file"),
                      ("-M", "--module-path")):
            for flag in flags:
                if arg == flag:
                    value = nxt
                    i += 1
                elif arg.startswith(flag + "=") or (len(flag) == 2 and arg.startswith(flag)
                                                    and len(arg) > 2):
                    value = arg[len(flag) + 1:] if arg.startswith(flag + "=") else arg[2:]
                else:
                    continue
                if flags[0] == "-e":
                    if value.startswith("@"):
                        found.append((flag, value[1:]))
                elif flags[0] == "-i" and "," in value:
                    pass                        # a host list, not a file
                else:
                    found.extend((flag, part) for part in value.split(":") if part)
                break
            else:
                continue
            break
        i += 1
    return found


def extra_vars(args: list[str]) -> dict[str, str]:
    """``-e k=v k2=v2`` / ``--extra-vars "k=v"`` pairs (not ``@file``, not JSON):
    the variables with the highest precedence in a play."""
    found: dict[str, str] = {}
    for i, arg in enumerate(args):
        value = None
        if arg in ("-e", "--extra-vars") and i + 1 < len(args):
            value = args[i + 1]
        elif arg.startswith("--extra-vars="):
            value = arg[len("--extra-vars="):]
        elif arg.startswith("-e") and len(arg) > 2 and not arg.startswith("-e@"):
            value = arg[2:].removeprefix("=")
        if not value or value.startswith(("@", "{", "[")):
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        found.update(w.split("=", 1) for w in words if "=" in w)    # type: ignore[misc]
    return found
