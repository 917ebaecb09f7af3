"""The example stack through doit in process: role-to-image precision and
cloud-init user-data per image and environment."""

from __future__ import annotations

import re
import shutil
import subprocess

import yaml

from support.project import IMAGES, failed, ok
from tasks.ops import cloud_init

ENVIRONMENTS = ["production", "staging"]
SECRETS = {"DATADOG_API_KEY": "0123456789abcdef0123456789abcdef",
           "PAPERTRAIL_DESTINATION": "syslog+tls://logs9.papertrailapp.com:12345",
           "BUILDKITE_AGENT_TOKEN": "bkua_secretsecretsecretsecretsecret"}


def test_a_buildkite_role_change_rebuilds_only_the_agents(tree):
    ok(tree.doit("amis"))
    role_file = tree.path / "ansible/roles/buildkite_agent/templates/buildkite-agent.cfg.j2"
    role_file.write_text(role_file.read_text() + 'disconnect-after-idle-timeout=600\n')
    result = ok(tree.doit("plan"))
    stale = re.findall(r"^(\w+)\s+build", result.stdout, re.M)
    assert sorted(stale) == ["build", "deploy"]


def test_user_data_is_rendered_per_image_and_environment(tree):
    ok(tree.doit("cloud_init", env=SECRETS))
    rendered = tree.path / ".amis/cloud-init"
    files = sorted(p.relative_to(rendered).as_posix() for p in rendered.rglob("*.yaml"))
    assert files == [f"{e}/{i}.yaml" for e in ENVIRONMENTS for i in sorted(IMAGES)]
    for path in rendered.rglob("*.yaml"):
        text = path.read_text()
        assert text.startswith("#cloud-config\n")
        data = yaml.safe_load(text)
        boot_env = data["write_files"][0]["content"]
        assert "DATADOG_API_KEY_PARAMETER=/acme/shared/datadog/api_key" in boot_env
        assert ["/usr/local/sbin/datadog-configure"] in data["runcmd"]
        for secret in SECRETS.values():
            assert secret not in text
        if shutil.which("cloud-init"):
            subprocess.run(["cloud-init", "schema", "--config-file", str(path)], check=True)
    web = yaml.safe_load((rendered / "production/web.yaml").read_text())
    assert "IMAGE=registry.example.com/acme/web:2026-11-20" in web["write_files"][1]["content"]
    build = yaml.safe_load((rendered / "staging/build.yaml").read_text())
    assert "BUILDKITE_AGENT_TOKEN_PARAMETER=" in build["write_files"][0]["content"]
    assert ["/usr/local/sbin/buildkite-agent-configure"] in build["runcmd"]
    again = ok(tree.doit("cloud_init"))
    assert "-- cloud_init:production/web" in again.stderr      # up to date


def test_a_missing_variable_names_template_and_variable(tree):
    path = tree.path / cloud_init.VARS_FILE
    text = path.read_text()
    path.write_text(text.replace("    worker_image: registry.example.com/acme/worker:2026-11-20\n", ""))
    out = failed(tree.doit("cloud_init"))
    assert ("cloud-init/templates/worker.yaml.j2: 'worker_image' is undefined in environment "
            "production") in out


def test_a_secret_in_the_variables_is_refused(tree):
    path = tree.path / cloud_init.VARS_FILE
    path.write_text(path.read_text().replace(
        "    worker_concurrency: 8\n", "    worker_concurrency: 8\n    datadog_api_key: abc\n"))
    out = failed(tree.doit("list"))
    assert "environments.production.datadog_api_key looks like a secret" in out
