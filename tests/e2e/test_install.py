"""The environment ./doit and .ci/install make, as a kept Buildkite agent
uses it: it lives outside the checkout, keyed by the lock, so the agent's
`git clean -ffxdq` between jobs (which removes ignored files, .venv too)
costs no reinstall.

Nothing is downloaded here: ``PYTHON`` is a stand-in for ``python3 -m venv``
that links this test run's own environment and logs each venv and pip call,
so the test counts installs without reaching a package index."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from support.project import ROOT, Project, commit, ok, write_script

INSTALL_FILES = ["doit", ".ci", "requirements"]


def stand_in_python(tmp: Path, log: Path) -> Path:
    real_bin = Path(sys.executable).parent
    return write_script(tmp / "python3", f"""#!/bin/sh
echo "python $*" >> "{log}"
[ "$1 $2" = "-m venv" ] || exec "{sys.executable}" "$@"
for dir; do :; done
rm -rf "$dir" && mkdir -p "$dir/bin"
cat > "$dir/bin/python" <<'EOF'
#!/bin/sh
if [ "$1 $2" = "-m pip" ]; then echo "pip $*" >> "{log}"; exit 0; fi
exec "{sys.executable}" "$@"
EOF
chmod +x "$dir/bin/python"
ln -s "{real_bin / 'doit'}" "$dir/bin/doit"
""")


def step(project: Project, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-c", command], cwd=project.path, env=project.env,
                          capture_output=True, text=True, timeout=300)


def test_a_pipeline_step_installs_once_across_git_cleans(project, tmp_path):
    for name in INSTALL_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, project.path / name)
    commit(project.path, "install files")
    log = tmp_path / "installs.log"
    envs = tmp_path / "agent-cache" / "envs"
    project.env.update({"PYTHON": str(stand_in_python(tmp_path, log)), "AMI_ENVS": str(envs)})
    planned = ok(step(project, "./doit pipeline"))
    assert "installing the Python environment" in planned.stderr
    pipeline = yaml.safe_load((project.path / ".amis/pipeline.yml").read_text())
    web = next(s["command"] for s in pipeline["steps"] if s["key"] == "ami-web")
    assert web == "./doit ami:web"

    ran = []
    for _ in range(2):                      # the same step on the kept agent, cleaned between
        ok(step(project, "git clean -ffxdq"))
        assert not (project.path / ".venv").exists() and not (project.path / ".amis").exists()
        ran.append(ok(step(project, web)))

    installs = log.read_text().splitlines()
    assert sum(line.startswith("python -m venv") for line in installs) == 1, installs
    assert sum(line.startswith("pip ") for line in installs) == 1, installs
    assert "--require-hashes -r requirements/lock.txt" in next(
        line for line in installs if line.startswith("pip "))
    assert not [r.stderr for r in ran if "installing" in r.stderr]
    assert (project.path / ".venv").resolve().parent == envs.resolve()
    assert [e.name for e in envs.iterdir() if e.is_dir()] == [(project.path / ".venv").resolve().name]
    assert project.packer_builds() == ["base", "web"]        # the second run rebuilt nothing


def test_a_lock_update_makes_a_new_environment_and_old_ones_are_pruned(project, tmp_path):
    for name in INSTALL_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, project.path / name)
    log = tmp_path / "installs.log"
    envs = tmp_path / "envs"
    project.env.update({"PYTHON": str(stand_in_python(tmp_path, log)), "AMI_ENVS": str(envs)})
    ok(step(project, "bash .ci/install --quiet"))
    old = (project.path / ".venv").resolve()
    subprocess.run(["touch", "-d", "40 days ago", str(old)], check=True)
    with (project.path / "requirements/lock.txt").open("a") as lock:
        lock.write("# updated\n")
    ok(step(project, "bash .ci/install --quiet"))
    new = (project.path / ".venv").resolve()
    assert new != old and new.parent == old.parent
    assert not old.exists(), "an environment unused for 40 days is pruned"


def test_doit_from_a_subfolder_runs_from_the_top(project, tmp_path):
    for name in INSTALL_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, project.path / name)
    commit(project.path, "install files")
    project.env.update({"PYTHON": str(stand_in_python(tmp_path, tmp_path / "installs.log")),
                        "AMI_ENVS": str(tmp_path / "envs")})
    project.env.pop("XDG_CACHE_HOME", None)
    listed = ok(step(project, "cd ansible && ../doit list"))
    assert f"running from {project.path}, the tree's top (dodo.py is there)" in listed.stderr
    assert "plan " in listed.stdout and "Could not find dodo file" not in listed.stderr
    # once per machine, the Packer version, for the checks made before a program may run
    known = json.loads((Path(project.env["HOME"]) / ".cache/amis/packer-version.json")
                       .read_text())
    assert known["version"].startswith("1.") and "packer" in Path(known["binary"][0]).name
