"""The checkout: each image's inputs and hashes read once per run, the
settings its digest covers, git's word on the commit, and the outcomes a
run keeps for the annotation."""

from __future__ import annotations

import json

from tasks.state.outcomes import Outcome, Outcomes


def test_inputs_and_hashes_are_read_once_per_run(tree):
    run, _ = tree.run()
    checkout = run.checkout
    first = checkout.manifest("web")
    assert "ansible/roles/web_app/tasks/main.yml" in first
    (tree.path / "ansible/roles/web_app/tasks/main.yml").write_text("---\n# edited\n")
    assert checkout.manifest("web") == first                    # this run has its hashes
    later, _ = tree.run()
    assert later.checkout.manifest("web") != first              # the next run sees the edit
    assert checkout.inputs() is checkout.inputs()


def test_the_digest_covers_the_build_settings_and_the_kind(tree):
    run, _ = tree.run()
    web = run.checkout.digest_settings("web")
    assert web == {"regions": ["eu-west-1", "us-east-1"], "vars": {}, "sandbox": True,
                   "packer_dir": ".", "var_files": [], "kind": "ansible"}
    assert tree.run({"AMI_SANDBOX": ""})[0].checkout.digest_settings("web")["sandbox"] is False


def test_git_says_the_commit_branch_and_dirtiness(tree):
    run, _ = tree.run()
    git = run.checkout.git()
    assert git["branch"] == "main" and len(str(git["commit"])) == 40 and git["dirty"] is False
    tree.append("ansible/roles/web_app/tasks/main.yml", "\n# edited\n")
    assert tree.run()[0].checkout.git()["dirty"] is True
    ci, _ = tree.run({"BUILDKITE_COMMIT": "c" * 40, "BUILDKITE_BRANCH": "release",
                      "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/amis/builds/7"})
    assert ci.checkout.git()["commit"] == "c" * 40 and ci.checkout.channel()[0] == "release"
    assert ci.checkout.git()["build_url"] == "https://buildkite.com/acme/amis/builds/7"


def test_outcomes_are_kept_for_the_annotation(tmp_path):
    path = tmp_path / "last-run.json"
    outcomes = Outcomes(path)
    outcomes.start()
    assert json.loads(path.read_text()) == {} and outcomes.started
    outcomes.add(Outcome("web", "built", "ami-12345678", 12.5))
    assert Outcomes.load(path) == {"web": Outcome("web", "built", "ami-12345678", 12.5)}
    assert outcomes.get("web").seconds == 12.5 and outcomes.get("base") is None
    path.write_text("{broken")
    assert Outcomes.load(path) == {}
