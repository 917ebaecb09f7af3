"""The Buildkite agent images (ansible/build_ami.yaml, deploy_ami.yaml):
the agent installed, on its queue, off until its token is in place."""

import pytest

QUEUES = {"build": 'tags="queue=build,docker=true"', "deploy": 'tags="queue=deploy,deploy=true"'}


@pytest.mark.instance
def test_the_agent_is_installed_and_waits_for_its_token(host):
    assert host.package("buildkite-agent").is_installed
    assert not host.service("buildkite-agent").is_enabled
    assert host.file("/usr/local/sbin/buildkite-agent-configure").mode == 0o755


@pytest.mark.instance
def test_the_agent_is_on_its_queue(host, ami):
    config = host.file("/etc/buildkite-agent/buildkite-agent.cfg")
    assert config.user == "buildkite-agent" and config.mode == 0o600
    assert QUEUES[ami["image"]] in config.content_string


@pytest.mark.instance
def test_the_agent_may_use_docker(host):
    assert "docker" in host.user("buildkite-agent").groups
