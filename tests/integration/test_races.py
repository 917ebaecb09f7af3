"""Races between agents, in process: two runs of one tree on two threads,
each with its own lock holder, made deterministic by a request held at the
fault-injecting proxy or a build held by the scripted Packer. Nothing
here waits on a sleep; a loop that looks again only waits for a condition."""

from __future__ import annotations

import re
import threading
import time
from typing import Callable

from support.inproc import Tree, build_all, next_second
from support.project import current_ami, ok
from tasks.adapters.fakes import ScriptedPacker
from tasks.cli.compose import App
from tasks.core.errors import AmiError

FAST_LOCKS = {"AMI_LOCK_POLL_SECONDS": "0.05"}


class Agent(threading.Thread):
    """One agent's work on a thread; its error, if any, is kept."""

    def __init__(self, work: Callable[[], object]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.work()
        except BaseException as err:       # noqa: BLE001 - shown by the test
            self.error = err

    def done(self, timeout: float = 120) -> None:
        self.join(timeout)
        assert not self.is_alive(), "the agent did not finish"
        assert self.error is None, repr(self.error)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.01)


def base_only(app: App) -> None:
    """What `doit ami:base` does: pull, the source, base."""
    app.builder.pull()
    app.builder.resolve_source()
    app.builder.bring_up_to_date("base")


def exists(aws, ami: str) -> bool:
    return bool(aws.ec2.describe_images(Filters=[{"Name": "image-id", "Values": [ami]}])["Images"])


def test_gc_cannot_deregister_an_ami_that_a_reuse_is_making_current(tree: Tree, aws, proxy):
    ok(tree.doit("amis"))
    role = tree.path / "ansible/roles/worker_app/defaults/main.yml"
    original = role.read_text()
    first = current_ami(aws, "worker")
    role.write_text(original + "\nworker_extra: 1\n")
    tree.commit()
    next_second()
    ok(tree.doit("amis"))                          # worker's first AMI is current nowhere now
    role.write_text(original)
    tree.commit()                                  # a revert: the next build reuses it
    tree.reset_count()
    held = proxy.hold(lambda r: r.action == "DeregisterImage" and r.form("ImageId") == first)
    collector, _ = tree.run({"AWS_ENDPOINT_URL": proxy.url})
    agent_gc = Agent(lambda: collector.collector.collect(True, 1, 0, 20, 6))
    agent_gc.start()
    assert held.arrived.wait(60), repr(agent_gc.error)
    builder, out = tree.run(FAST_LOCKS)
    agent_build = Agent(lambda: build_all(builder))
    agent_build.start()
    # The reuse must wait for gc (same lock); without it, it finishes first.
    wait_for(lambda: "waiting for" in out.getvalue() or not agent_build.is_alive(),
             "the build meets gc's lock")
    assert "waiting for" in out.getvalue(), out.getvalue()
    held.release.set()
    agent_gc.done()
    agent_build.done()
    now = current_ami(aws, "worker")
    assert exists(aws, now), f"main/worker.json names {now}, which no longer exists"
    assert now != first and tree.packer_builds() == ["worker"]


def test_refreshing_goes_on_after_a_failed_refresh(tree: Tree, aws, proxy, tmp_path):
    """One failed renewal must not let another agent take over and build again."""
    ok(tree.doit("ami:centos"))
    renewals = lambda r: r.method == "PUT" and "/locks/" in r.path and "If-Match" in r.headers  # noqa: E731
    failing = proxy.fail(renewals)
    gate = tree.packer.hold["base"] = threading.Event()
    env = {"AMI_LOCK_TTL_SECONDS": "3", **FAST_LOCKS}
    run_a, out_a = tree.run({**env, "AWS_ENDPOINT_URL": proxy.url})
    agent_a = Agent(lambda: base_only(run_a))
    agent_a.start()
    wait_for(lambda: "could not renew the lock" in out_a.getvalue(), "a failed renewal")
    proxy.rules.remove(failing)                    # one renewal failed; the next ones pass
    wait_for(lambda: proxy.count(renewals) - failing.hits >= 2, "two renewals after it")
    run_b, out_b = tree.clone(tmp_path / "agent-b").run(env)
    agent_b = Agent(lambda: base_only(run_b))
    agent_b.start()
    wait_for(lambda: "waiting for" in out_b.getvalue(), "agent B waits for A's lock")
    gate.set()
    agent_a.done()
    agent_b.done()
    assert tree.packer_builds() == ["base"], out_b.getvalue()


def test_a_renewal_whose_reply_was_lost_keeps_the_lock(tree: Tree, aws, proxy):
    """The renewal is written but its reply never comes: the retry's If-Match
    is stale, and the lock is still ours."""
    ok(tree.doit("ami:centos"))
    renewals = lambda r: r.method == "PUT" and "/locks/" in r.path and "If-Match" in r.headers  # noqa: E731
    lost = proxy.lose(renewals, times=1)
    gate = tree.packer.hold["base"] = threading.Event()
    run_a, out_a = tree.run({"AMI_LOCK_TTL_SECONDS": "3", **FAST_LOCKS,
                             "AWS_ENDPOINT_URL": proxy.url})
    agent_a = Agent(lambda: base_only(run_a))
    agent_a.start()
    wait_for(lambda: lost.hits == 1 and proxy.count(renewals) >= 4,
             "a renewal whose reply is lost, then more")
    gate.set()
    agent_a.done()
    assert "lost the lock" not in out_a.getvalue(), out_a.getvalue()
    assert tree.packer_builds() == ["base"]
    assert not [key for key in tree.objects() if "locks/" in key], "the lock was not released"


def test_a_build_that_lost_its_lock_does_not_replace_a_newer_one(tree: Tree, aws, proxy,
                                                                  tmp_path):
    ok(tree.doit("ami:centos"))
    proxy.fail(lambda r: r.method == "PUT" and "/locks/" in r.path and "If-Match" in r.headers)
    gate = tree.packer.hold["base"] = threading.Event()
    env = {"AMI_LOCK_TTL_SECONDS": "2", **FAST_LOCKS}
    run_a, out_a = tree.run({**env, "AWS_ENDPOINT_URL": proxy.url})
    agent_a = Agent(lambda: base_only(run_a))
    agent_a.start()
    wait_for(lambda: tree.packer.started.get("base", threading.Event()).is_set(), "A builds")
    other = tree.clone(tmp_path / "agent-b")
    other.packer = ScriptedPacker(ec2=tree.packer.ec2, regions=tree.packer.regions)
    run_b, out_b = other.run(env)
    base_only(run_b)                                # takes over once A's lock expires
    assert "took over the lock" in out_b.getvalue(), out_b.getvalue()
    newer = current_ami(aws, "base")
    gate.set()
    agent_a.done()
    assert current_ami(aws, "base") == newer, out_a.getvalue()
    assert re.search(r"\[base\] a build that started later \(" + newer + r", commit \w+\) is "
                     r"current; left it so", out_a.getvalue()), out_a.getvalue()


def _feature_moves_on(tree: Tree, aws) -> tuple[str, dict]:
    """main built, then web on channel feature: (feature's AMI, and the
    settings that build on feature)."""
    feature = {"AMI_CHANNEL": "feature"}
    role = tree.path / "ansible/roles/web_app/defaults/main.yml"
    ok(tree.doit("amis"))
    role.write_text(role.read_text() + "\nweb_first: 1\n")
    tree.commit()
    next_second()
    ok(tree.doit("ami:web", env=feature))
    return current_ami(aws, "web", "feature"), feature


def _feature_moves_again(tree: Tree, feature: dict) -> None:
    """web changes again on feature, and feature builds it."""
    role = tree.path / "ansible/roles/web_app/defaults/main.yml"
    role.write_text(role.read_text() + "\nweb_second: 1\n")
    tree.commit()
    next_second()
    ok(tree.doit("ami:web", env=feature))


def test_gc_cannot_delete_an_ami_a_promotion_is_moving_to(tree: Tree, aws, proxy):
    """promote holds the image's lock while it moves main: gc, finding the
    lock held, keeps the AMI, and main never names a deregistered AMI."""
    first, feature = _feature_moves_on(tree, aws)
    publishing = proxy.hold(lambda r: r.method == "PUT" and "/promotions/web/" in r.path)
    promoter, out = tree.run({"AWS_ENDPOINT_URL": proxy.url})
    agent = Agent(lambda: promoter.promoter.promote("web", "feature", "main"))
    agent.start()
    assert publishing.arrived.wait(60), repr(agent.error)
    _feature_moves_again(tree, feature)
    collected = tree.doit("gc", "--keep", "1", "--days", "0", "--apply")
    assert re.search(rf"{first} .*keep\s+.*in use by .*who holds its lock", collected.stdout), \
        collected.stdout
    publishing.release.set()
    agent.done()
    assert current_ami(aws, "web") == first and exists(aws, first), out.getvalue()


def test_a_promotion_held_before_its_lock_refuses_an_ami_gc_deleted_meanwhile(tree: Tree,
                                                                              aws, proxy):
    """promote checked feature's AMI, then waited for the lock; meanwhile
    feature moved on and gc deleted that AMI. Under the lock the promotion
    looks again, finds it gone, and moves nothing."""
    first, feature = _feature_moves_on(tree, aws)
    before = current_ami(aws, "web")
    locking = proxy.hold(lambda r: r.method == "PUT" and "/locks/web/" in r.path)
    promoter, out = tree.run({"AWS_ENDPOINT_URL": proxy.url})
    agent = Agent(lambda: promoter.promoter.promote("web", "feature", "main"))
    agent.start()
    assert locking.arrived.wait(60), repr(agent.error)
    _feature_moves_again(tree, feature)
    ok(tree.doit("gc", "--keep", "1", "--days", "0", "--apply"))
    assert not exists(aws, first)
    locking.release.set()
    agent.join(60)
    assert isinstance(agent.error, AmiError) and "no longer exists" in str(agent.error), \
        (agent.error, out.getvalue())
    assert current_ami(aws, "web") == before
