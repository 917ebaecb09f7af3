"""The web image (ansible/web_ami.yaml): the web service's open-file limit."""

import pytest


@pytest.mark.instance
def test_the_web_service_may_open_65536_files(host):
    limits = host.file("/etc/systemd/system/web.service.d/limits.conf")
    assert limits.exists and "LimitNOFILE=65536" in limits.content_string
