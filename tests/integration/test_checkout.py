"""The checkout with the real git: the commit, the branch and whether the
tree is dirty, and what Buildkite says instead."""

from __future__ import annotations


def test_git_says_the_commit_branch_and_dirtiness(tree):
    app, _ = tree.run()
    git = app.checkout.git()
    assert git["branch"] == "main" and len(str(git["commit"])) == 40 and git["dirty"] is False
    tree.append("ansible/roles/web_app/tasks/main.yml", "\n# edited\n")
    assert tree.run()[0].checkout.git()["dirty"] is True
    job = {"BUILDKITE": "true", "BUILDKITE_COMMIT": git["commit"], "BUILDKITE_BRANCH": "release",
           "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/amis/builds/7"}
    ci, _ = tree.run(job)
    assert ci.checkout.git()["commit"] == git["commit"] and ci.checkout.channel()[0] == "release"
    assert ci.checkout.git()["build_url"] == "https://buildkite.com/acme/amis/builds/7"
    # What is built is HEAD: a commit Buildkite names that HEAD is not is never recorded
    other, _ = tree.run({**job, "BUILDKITE_COMMIT": "c" * 40})
    assert other.checkout.git()["commit"] == git["commit"]
    assert other.checkout.git()["not_buildkite_commit"] == "c" * 40
    by_hand, _ = tree.run({"BUILDKITE_COMMIT": "c" * 40, "BUILDKITE_BRANCH": "release"})
    assert by_hand.checkout.git()["commit"] == git["commit"]      # not Buildkite: ignored
    assert by_hand.checkout.git()["branch"] == "main"
