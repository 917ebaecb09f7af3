"""The run's clock: the agent's time corrected by the Date of AWS's replies."""

from __future__ import annotations

from datetime import datetime, timezone
from email.utils import formatdate

from tasks.core.clock import Clock

SERVER = 1_800_000_000.0


def test_before_any_reply_it_is_the_agents_clock():
    clock = Clock(local=lambda: SERVER + 600)
    assert clock.offset == 0 and clock.time() == SERVER + 600


def test_an_agent_ten_minutes_ahead_or_behind_tells_the_clouds_time():
    for skew in (600, -600):
        clock = Clock(local=lambda: SERVER + 0.4 + skew)     # the reply arrived 0.4 s later
        clock.observe(formatdate(SERVER, usegmt=True))
        assert abs(clock.time() - SERVER) <= 1
        assert clock.now() == datetime.fromtimestamp(clock.time(), timezone.utc)


def test_the_closest_of_several_replies_is_kept():
    local = {"t": SERVER + 0.9}
    clock = Clock(local=lambda: local["t"])
    clock.observe(formatdate(SERVER, usegmt=True))          # Date rounds down: -0.9
    local["t"] = SERVER + 1.1
    clock.observe(formatdate(SERVER + 1, usegmt=True))      # -0.1: closer
    local["t"] = SERVER + 5.8
    clock.observe(formatdate(SERVER + 5, usegmt=True))      # -0.8: further, not taken
    assert round(clock.offset, 3) == -0.1


def test_a_reply_without_a_readable_date_teaches_nothing():
    clock = Clock(local=lambda: SERVER)
    for date in (None, "", "yesterday", "Wed, 99 Foo 2026 25:61:00 GMT"):
        clock.observe(date)
    assert clock.offset == 0
