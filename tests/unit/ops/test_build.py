"""What ``ami:<name>`` does, in process: keep, reuse or build with the
scripted Packer, and publish."""

from __future__ import annotations

from tasks.ops.build import backoff


def test_backoff_grows_and_is_capped():
    for attempt in range(5):
        delay = backoff(attempt, 10)
        assert 10 * 2 ** attempt * 0.5 <= delay <= min(600, 10 * 2 ** attempt)
    assert backoff(20, 10) <= 600
