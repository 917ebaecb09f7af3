"""What the base image is for (ansible/base_ami.yaml): the packages every
host needs, Docker, log shipping and monitoring, left ready for boot-time
configuration. Every image is built on base, so every image passes these."""

import pytest


def test_it_is_a_linux_host(host):
    assert host.system_info.type == "linux"


@pytest.mark.instance
@pytest.mark.parametrize("package", ["chrony", "curl", "jq", "unzip", "docker-ce",
                                     "containerd.io", "datadog-agent"])
def test_the_packages_every_host_needs_are_installed(host, package):
    assert host.package(package).is_installed


@pytest.mark.instance
def test_time_is_kept_by_chrony_in_utc(host):
    assert host.service("chronyd").is_enabled
    assert host.file("/etc/localtime").linked_to == "/usr/share/zoneinfo/UTC"


@pytest.mark.instance
def test_docker_runs_and_starts_at_boot(host):
    docker = host.service("docker")
    assert docker.is_running and docker.is_enabled
    assert host.run("docker info").rc == 0


@pytest.mark.instance
def test_logs_ship_with_logspout_from_boot(host):
    assert host.file("/etc/systemd/system/logspout.service").exists
    assert host.service("logspout").is_enabled
    assert host.file("/usr/local/sbin/logspout-configure").mode == 0o755


@pytest.mark.instance
def test_datadog_waits_for_its_api_key(host):
    # Off until datadog-configure reads the key from SSM at boot.
    assert not host.service("datadog-agent").is_enabled
    assert host.file("/usr/local/sbin/datadog-configure").mode == 0o755


@pytest.mark.instance
def test_the_boot_time_helpers_are_in_place(host):
    assert host.file("/etc/amis").is_directory
    assert host.file("/usr/local/sbin/amis-ssm-get").mode == 0o755
