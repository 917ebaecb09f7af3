"""The checkout: each image's inputs and hashes read once per run, the
settings its digest covers, and the reports a run keeps for the annotation
(git's word on the commit: integration/test_checkout.py)."""

from __future__ import annotations

import json

from tasks.core.outcome import Outcome
from tasks.state.reports import Report, Reports


def test_inputs_and_hashes_are_read_once_per_run(tree):
    app, _ = tree.run()
    checkout = app.checkout
    first = checkout.manifest("web")
    assert "ansible/roles/web_app/tasks/main.yml" in first
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n# edited\n")
    assert checkout.manifest("web") == first                    # this run has its hashes
    later, _ = tree.run()
    assert later.checkout.manifest("web") != first              # the next run sees the edit
    assert checkout.inputs() is checkout.inputs()


def test_the_digest_covers_the_build_settings_and_the_kind(tree):
    app, _ = tree.run()
    web = app.checkout.digest_settings("web")
    assert web == {"regions": ["eu-west-1", "us-east-1"], "vars": {}, "sandbox": True,
                   "packer_dir": ".", "var_files": [], "kind": "ansible"}
    assert tree.run({"AMI_SANDBOX": ""})[0].checkout.digest_settings("web")["sandbox"] is False


def test_reports_are_kept_for_the_annotation(tmp_path):
    path = tmp_path / "last-run.json"
    reports = Reports(path)
    reports.start()
    assert json.loads(path.read_text()) == {} and reports.started
    reports.add(Report("web", Outcome.BUILT, "ami-12345678", 12.5))
    assert Reports.load(path) == {"web": Report("web", Outcome.BUILT, "ami-12345678", 12.5)}
    assert Reports.load(path)["web"].outcome is Outcome.BUILT
    assert reports.get("web").seconds == 12.5 and reports.get("base") is None
    path.write_text("{broken")
    assert Reports.load(path) == {}
