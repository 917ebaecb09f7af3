"""The worker image (ansible/worker_ami.yaml): a stopped worker gets time
to finish its job."""

import pytest


@pytest.mark.instance
def test_a_stopped_worker_gets_five_minutes(host):
    drain = host.file("/etc/systemd/system/worker.service.d/drain.conf")
    assert drain.exists and "TimeoutStopSec=300" in drain.content_string
