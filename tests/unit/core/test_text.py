"""Tables as every command prints them."""

from __future__ import annotations

from tasks.core.text import table


def test_a_table_fits_a_terminal_by_cutting_its_last_column():
    rows = [["web", "build", "changed " + "ansible/roles/x/" * 15], ["base", "up to date", "ok"]]
    shown = table(rows, ["image", "status", "why"], width=60)
    assert max(len(line) for line in shown.splitlines()) <= 60
    assert shown.splitlines()[2].endswith("…") and shown.splitlines()[3].endswith("ok")
    assert table(rows, ["image", "status", "why"]).splitlines()[2].endswith("x/")    # piped: all
    narrow = table(rows, ["image", "status", "why"], width=10)     # keeps 20 of the last column
    assert narrow.splitlines()[2].endswith(" changed ansible/rol…")
