"""Fixtures for every layer: moto_server on loopback (one per test worker,
reset for each test) with boto3 clients on it, and a fault-injecting proxy
in front of it. Helpers live in ``support/``."""

from __future__ import annotations

import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS.parent), str(TESTS)]

from support.project import REGION, ROOT, AwsClients  # noqa: E402
from tasks.adapters import emulator  # noqa: E402


@pytest.fixture(scope="session")
def emulator_url(tmp_path_factory) -> str:
    port = emulator.free_port()
    log = tmp_path_factory.mktemp("emulator") / "moto.log"
    proc = emulator.spawn(port, ROOT, log=log)
    try:
        emulator.wait_until_listening(port, proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        # A session's emulator holds every test's AMIs; on a loaded machine it
        # can take longer than 10 s to stop cleanly, and it holds nothing to keep.
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def aws(emulator_url) -> AwsClients:
    """A clean emulator for each test, and boto3 clients on it."""
    import boto3

    req = urllib.request.Request(f"{emulator_url}/moto-api/reset", method="POST")
    urllib.request.urlopen(req, timeout=10).read()
    kw = dict(endpoint_url=emulator_url, region_name=REGION,
              aws_access_key_id="test", aws_secret_access_key="test")
    return AwsClients(s3=boto3.client("s3", **kw), ec2=boto3.client("ec2", **kw),
                      url=emulator_url)


@pytest.fixture
def proxy(aws):
    """A fault-injecting proxy in front of the (reset) emulator."""
    from support.faultproxy import FaultProxy
    p = FaultProxy(aws.url)
    yield p
    p.close()


@pytest.fixture
def tree(tmp_path, aws, monkeypatch):
    """The example tree, committed on main, run in this process: runs composed
    with the scripted Packer, AWS the emulator (see support/inproc.py)."""
    from support.inproc import Tree
    for key, value in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                       "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return Tree.example(tmp_path / "repo", aws.url)
