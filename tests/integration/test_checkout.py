"""The checkout with the real git: the commit, the branch and whether the
tree is dirty, and what Buildkite says instead."""

from __future__ import annotations


def test_git_says_the_commit_branch_and_dirtiness(tree):
    app, _ = tree.run()
    git = app.checkout.git()
    assert git["branch"] == "main" and len(str(git["commit"])) == 40 and git["dirty"] is False
    tree.append("ansible/roles/web_app/tasks/main.yml", "\n# edited\n")
    assert tree.run()[0].checkout.git()["dirty"] is True
    ci, _ = tree.run({"BUILDKITE_COMMIT": "c" * 40, "BUILDKITE_BRANCH": "release",
                      "BUILDKITE_BUILD_URL": "https://buildkite.com/acme/amis/builds/7"})
    assert ci.checkout.git()["commit"] == "c" * 40 and ci.checkout.channel()[0] == "release"
    assert ci.checkout.git()["build_url"] == "https://buildkite.com/acme/amis/builds/7"
