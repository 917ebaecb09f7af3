"""Settings: the environment read once, each mistake one line naming the
variable; channels from branches; small helpers of the core."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tasks.core import channels
from tasks.core.errors import AmiError
from tasks.core.once import Memo, Once
from tasks.core.settings import load_settings, require_bucket
from tasks.core.text import table

ROOT = Path("/repo")


def test_settings_come_from_the_environment_given():
    s = load_settings(ROOT, {"AMI_BUCKET": "acme-amis", "AMI_PREFIX": "/teams/platform/",
                             "AMI_PACKER_RETRIES": "4", "AMI_LOCK_TTL_SECONDS": "60",
                             "BUILDKITE": "true", "BUILDKITE_COMMIT": "abc",
                             "BUILDKITE_BUILD_CREATOR_EMAIL": "ci@example.com",
                             "BUILDKITE_AGENT_META_DATA_QUEUE": "amis", "USER": "bob"})
    assert (s.bucket, s.prefix, s.retries, s.lock_ttl) == ("acme-amis", "teams/platform/", 4, 60.0)
    assert s.buildkite.active and s.buildkite.commit == "abc" and s.buildkite.queue == "amis"
    assert s.buildkite.creator == "ci@example.com" and s.user == "bob"
    assert s.env["AMI_BUCKET"] == "acme-amis"
    with pytest.raises(TypeError):
        s.env["AMI_BUCKET"] = "other"             # a snapshot, read-only


def test_the_sandbox_has_its_own_bucket_and_no_bucket_is_one_line():
    assert load_settings(ROOT, {"AMI_SANDBOX": "1"}).bucket == "amis-sandbox"
    with pytest.raises(AmiError, match="AMI_BUCKET is not set: export AMI_BUCKET="):
        require_bucket(load_settings(ROOT, {}))


@pytest.mark.parametrize("env, message", [
    ({"AMI_BUCKET": "Bad_Bucket"}, "AMI_BUCKET='Bad_Bucket' is not a valid S3 bucket name"),
    ({"AMI_PREFIX": "a/../b"}, "AMI_PREFIX='a/../b' holds characters unsafe in an S3 key"),
    ({"AMI_PACKER_RETRIES": "many"}, "AMI_PACKER_RETRIES='many' must be a non-negative whole"),
    ({"AMI_LOCK_TTL_SECONDS": "-1"}, "AMI_LOCK_TTL_SECONDS='-1' must be a non-negative number"),
    ({"AMI_LOCK_TTL_SECONDS": "nan"}, "AMI_LOCK_TTL_SECONDS='nan' must be a non-negative number"),
    ({"AMI_LOCK_POLL_SECONDS": "inf"}, "AMI_LOCK_POLL_SECONDS='inf' must be a non-negative"),
    ({"AMI_LOCK_TTL_SECONDS": "0"}, "AMI_LOCK_TTL_SECONDS='0' must be more than 0 and at most "
                                    "3600"),
    ({"AMI_LOCK_TTL_SECONDS": "86400"}, "AMI_LOCK_TTL_SECONDS='86400' must be more than 0 and "
                                        "at most 3600"),
    ({"AMI_CHANNEL": "Main"}, "AMI_CHANNEL='Main': channel names must match"),
    ({"AMI_SSM_PREFIX": "amis"}, "AMI_SSM_PREFIX='amis' must look like /amis"),
])
def test_a_bad_setting_is_one_line_naming_it(env, message):
    with pytest.raises(AmiError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_settings(ROOT, env)


def test_the_default_branch_moves_main_and_other_branches_their_own_channel():
    s = load_settings(ROOT, {})
    clean = {"dirty": False}
    assert channels.choose(s, {**clean, "branch": "main"}) == ("main", "")
    assert channels.choose(s, {**clean, "branch": "feature/Faster-Boot"})[0] == \
        "feature-faster-boot-bf604419"
    # one to one: only the default branch moves main, and no two branches share a channel
    names = ["Main", "MAIN", "main_", "main", "feature/x", "feature-x", "feature_x", "dirty"]
    chosen = [channels.choose(load_settings(ROOT, {"AMI_DEFAULT_BRANCH": "trunk"}),
                              {**clean, "branch": b})[0] for b in names]
    assert len(set(chosen)) == len(names) and "main" not in chosen and "dirty" not in chosen
    assert chosen[names.index("feature-x")] == "feature-x"
    assert channels.choose(load_settings(ROOT, {"AMI_CHANNEL": "staging"}),
                           {**clean, "branch": "main"}) == ("staging", "")


def test_a_dirty_tree_never_moves_main_unless_allowed():
    s = load_settings(ROOT, {})
    name, note = channels.choose(s, {"branch": "main", "dirty": True,
                                     "untracked_inputs": ["a", "b", "c", "d"]})
    assert name == "dirty" and "inputs git does not have at HEAD (a, b, c, ...)" in note
    allowed = load_settings(ROOT, {"AMI_ALLOW_DIRTY": "1"})
    assert channels.choose(allowed, {"branch": "main", "dirty": True}) == ("main", "")


def test_once_and_memo_make_each_value_once_across_threads():
    made: list[int] = []
    once = Once(lambda: made.append(1) or len(made))
    workers = [threading.Thread(target=once) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert once() == 1 and made == [1]
    calls: list[str] = []
    memo: Memo[str, str] = Memo(lambda k: calls.append(k) or k.upper())
    assert [memo("a"), memo("b"), memo("a")] == ["A", "B", "A"] and calls == ["a", "b"]


def test_tables_are_aligned_without_trailing_space():
    assert table([["web", "ami-1", ""], ["worker", "ami-22", "x"]], ["image", "ami", "n"]) == (
        "image   ami     n\n------  ------  -\nweb     ami-1\nworker  ami-22  x")


def test_the_nearest_name_to_a_typo_counts_a_swap_as_one_edit():
    from tasks.core.text import closest
    regions = ["us-east-1", "us-west-1", "eu-west-1", "eu-west-2"]
    assert closest("us-esat-1", regions) == "us-east-1"
    assert closest("eu-wset-2", regions) == "eu-west-2"
    assert closest("mars-north-9", regions) is None


@pytest.mark.parametrize("name", ["AMI_DEFAULT_BRANCH", "BUILDKITE_PIPELINE_DEFAULT_BRANCH"])
@pytest.mark.parametrize("value", ["main branch", "a..b", "-main", "main.lock", "x~1", "a:b",
                                   "@", "HEAD", "refs/heads/", "x\tb"])
def test_a_default_branch_that_is_not_a_branch_name_is_refused(name, value):
    with pytest.raises(AmiError) as info:
        load_settings(ROOT, {name: value})
    assert str(info.value) == f"{name}={value.strip()!r} is not a git branch name: set it to " \
        "the branch whose builds move the main channel, e.g. main"


@pytest.mark.parametrize("value", ["main", "trunk", "release/2.x", "feature-$x", "v1.2"])
def test_a_default_branch_git_allows_is_taken(value):
    assert load_settings(ROOT, {"AMI_DEFAULT_BRANCH": value}).default_branch == value
