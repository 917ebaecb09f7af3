"""doit's file checker for this tree: md5 as doit's own, and the
executable bit, which decides whether a script runs but leaves the
modification time alone (``chmod`` changes only the inode's ctime)."""

from __future__ import annotations

import os
import stat
from typing import Any

from doit.dependency import MD5Checker


def _executable(mode: int) -> bool:
    return bool(mode & stat.S_IXUSR)


class ModeMD5Checker(MD5Checker):
    """State: (mtime, size, md5, executable). A state saved by doit's own
    checker (three fields) counts as modified once."""

    def check_modified(self, file_path: str, file_stat: os.stat_result, state: Any) -> bool:
        if len(state) != 4 or state[3] != _executable(file_stat.st_mode):
            return True
        return super().check_modified(file_path, file_stat, state[:3])

    def get_state(self, dep: str, current_state: Any) -> Any:
        executable = _executable(os.stat(dep).st_mode)
        if current_state and len(current_state) == 4 and current_state[3] == executable:
            kept = super().get_state(dep, current_state[:3])
            return None if kept is None else (*kept, executable)
        return (*super().get_state(dep, None), executable)
