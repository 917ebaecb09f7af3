"""Build locks on a MemoryStore: one holder at a time, a live lock waited
for, a dead one taken over, the holder's renewals, and a release that
never becomes the build's error."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest

from tasks.adapters.fakes import MemoryStore
from tasks.core.errors import AmiError
from tasks.core.settings import MAX_LOCK_TTL
from tasks.state.locks import Locks, owner

KEY = "locks/web/" + "d" * 64 + ".json"


def locks(store: MemoryStore, holder: str = "me", ttl: float = 300, poll: float = 0.01,
          wait=None) -> Locks:
    return Locks(store, "", {"owner": holder, "host": "elsewhere", "pid": 1}, ttl, poll,
                 wait or (lambda seconds: threading.Event().wait(seconds)))


def held_by(store: MemoryStore, who: str, expires_in: float, **extra) -> None:
    """A lock as another agent writes it, with a TTL of ``expires_in``."""
    store.put(KEY, json.dumps({"owner": who, "acquired": time.time(),
                               "expires": time.time() + expires_in, **extra}).encode())


def test_a_free_lock_is_taken_and_released():
    store = MemoryStore()
    said: list[str] = []
    with locks(store).held("web", "d" * 64, said.append) as lock:
        body = json.loads(store.objects[KEY])
        assert body["owner"] == "me" and body["expires"] > time.time()
        assert lock.key == KEY and not lock.lost
    assert KEY not in store.objects and said == []


def test_a_live_lock_is_waited_for_then_taken_when_it_expires():
    store = MemoryStore()
    held_by(store, "other:1:job", expires_in=0.3)
    said: list[str] = []
    started = time.monotonic()
    with locks(store).held("web", "d" * 64, said.append):
        assert json.loads(store.objects[KEY])["owner"] == "me"
    assert time.monotonic() - started >= 0.25
    assert said[0].startswith("waiting for other:1:job, who is building web with these inputs")
    assert said[1] == "took over the lock of other:1:job (it had expired)"


def test_waiting_ends_when_the_run_is_interrupted():
    store = MemoryStore()
    held_by(store, "other:1:job", expires_in=3600)
    with pytest.raises(AmiError, match="image web: interrupted while waiting for its lock"):
        with locks(store, wait=lambda seconds: True).held("web", "d" * 64, lambda _: None):
            pass


def test_held_if_free_says_who_holds_it_without_waiting():
    store = MemoryStore()
    held_by(store, "other:1:job", expires_in=3600)
    with locks(store).held_if_free("web", "d" * 64, lambda _: None) as (lock, holder):
        assert lock is None and holder == "other:1:job"
    assert json.loads(store.objects[KEY])["owner"] == "other:1:job"       # left alone


@pytest.mark.parametrize("body, who", [
    (b'{"owner": "nan-agent", "expires": NaN}', "nan-agent"),
    (b'{"owner": "nan-agent", "ttl": NaN}', "nan-agent"),
    (b"not json", "unknown (unreadable lock)"), (b'{"expires": 1}', "unknown (unreadable lock)")])
def test_an_unreadable_lock_is_taken_over_at_once(body, who):
    store = MemoryStore()
    store.put(KEY, body)
    said: list[str] = []
    with locks(store).held("web", "d" * 64, said.append):
        pass
    assert said == [f"took over the lock of {who} (its TTL could not be read)"]


def test_a_lock_whose_owner_died_on_this_host_is_taken_over_at_once():
    top = int(open("/proc/sys/kernel/pid_max").read())
    dead = next(pid for pid in range(top - 1, 1, -1) if not os.path.exists(f"/proc/{pid}"))
    store = MemoryStore()
    held_by(store, f"{socket.gethostname()}:{dead}:job", expires_in=3600,
            host=socket.gethostname(), pid=dead)
    said: list[str] = []
    with locks(store).held("web", "d" * 64, said.append):
        pass
    assert said == [f"took over the lock of {socket.gethostname()}:{dead}:job "
                    "(that process is gone)"]


def test_the_holder_renews_and_a_lock_taken_over_meanwhile_is_lost():
    store = MemoryStore()
    said: list[str] = []
    with locks(store, ttl=0.3).held("web", "d" * 64, said.append) as lock:
        first = store.objects[KEY]
        deadline = time.monotonic() + 10
        while store.objects[KEY] == first:               # renewed every TTL/3
            assert time.monotonic() < deadline
            time.sleep(0.01)
        held_by(store, "thief:2:job", expires_in=3600)   # another agent took it over
        while not lock.lost:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    assert json.loads(store.objects[KEY])["owner"] == "thief:2:job"      # not released
    assert any(line.startswith(f"lost the lock {KEY}") for line in said)


def test_a_failed_renewal_is_tried_again():
    store = MemoryStore()
    said: list[str] = []
    failures = {"left": 1}

    def renewals_fail_once(operation: str, key: str) -> None:
        if operation == "put" and key == KEY and failures["left"] and KEY in store.objects:
            failures["left"] -= 1
            raise AmiError("writing the lock: InternalError")
    store.before.append(renewals_fail_once)
    with locks(store, ttl=0.15).held("web", "d" * 64, said.append) as lock:
        first = store.objects[KEY]
        deadline = time.monotonic() + 10
        while store.objects[KEY] == first:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not lock.lost
    assert "could not renew the lock (writing the lock: InternalError); trying again" in said


def test_a_release_that_keeps_failing_is_a_warning():
    store = MemoryStore()
    said: list[str] = []

    def deletes_fail(operation: str, key: str) -> None:
        if operation == "delete":
            raise AmiError("deleting the lock: InternalError")
    store.before.append(deletes_fail)
    with locks(store).held("web", "d" * 64, said.append):
        pass
    assert said[-1].startswith(f"warning: could not release the lock {KEY} (deleting the "
                               "lock: InternalError); it expires by itself within 300 s")
    assert sum(1 for op, _ in store.calls if op == "delete") == 3


def test_the_owner_names_host_process_and_job():
    me = owner("job-42")
    assert me["owner"] == f"{socket.gethostname()}:{os.getpid()}:job-42"
    assert me["pid"] == os.getpid() and me["pid_start"]
    assert owner()["owner"] != owner()["owner"]          # no job: a random one each time


class StoreClock:
    """The store's own time, moved by the test."""
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


def test_an_agent_whose_clock_is_ten_minutes_ahead_does_not_take_a_live_lock(monkeypatch):
    """Expiry is the store's age of the lock, not the agent's time against
    an expiry another agent's clock wrote."""
    store = MemoryStore(clock=StoreClock())
    held_by(store, "other:1:job", expires_in=300)
    ahead = time.time() + 600
    monkeypatch.setattr("tasks.state.locks.time", type("T", (), {
        "time": staticmethod(lambda: ahead), "sleep": staticmethod(time.sleep)}))
    with locks(store).held_if_free("web", "d" * 64, lambda _: None) as (lock, holder):
        assert lock is None and holder == "other:1:job"
    store.clock.t += 301                                 # then it stops renewing
    said: list[str] = []
    with locks(store).held_if_free("web", "d" * 64, said.append) as (lock, _):
        assert lock is not None
    assert said == ["took over the lock of other:1:job (it had expired)"]


@pytest.mark.parametrize("body", ['{"owner": "forever:1:job", "ttl": 1e12}',
                                  '{"owner": "forever:1:job", "ttl": Infinity}',
                                  '{"owner": "forever:1:job", "acquired": 0, "expires": 1e300}'])
def test_an_absurd_expiry_counts_as_the_longest_ttl(body):
    store = MemoryStore(clock=StoreClock())
    store.put(KEY, body.encode())
    store.clock.t += MAX_LOCK_TTL - 1
    with locks(store).held_if_free("web", "d" * 64, lambda _: None) as (lock, _):
        assert lock is None
    store.clock.t += 2
    with locks(store).held_if_free("web", "d" * 64, lambda _: None) as (lock, _):
        assert lock is not None


def test_the_wait_names_the_time_left_by_the_stores_clock():
    store = MemoryStore(clock=StoreClock())
    held_by(store, "other:1:job", expires_in=300)
    store.clock.t += 100
    said: list[str] = []
    with pytest.raises(AmiError, match="interrupted"):
        with locks(store, wait=lambda seconds: True).held("web", "d" * 64, said.append):
            pass
    assert said == ["waiting for other:1:job, who is building web with these inputs (its lock "
                    "expires in 200 s unless renewed)"]


def test_a_lock_says_its_ttl():
    store = MemoryStore()
    with locks(store, ttl=120).held("web", "d" * 64, lambda _: None):
        assert json.loads(store.objects[KEY])["ttl"] == 120
