"""doit as users run it: the graph is usable as printed, offline, and
importing the task creators creates nothing."""

from __future__ import annotations

import re
import subprocess
import sys

from support.project import copy_project


def test_graph_prints_only_the_graph_offline_and_with_awkward_names(tmp_path):
    def renamed(root):
        graph = root / "amis.yaml"
        graph.write_text(graph.read_text().replace("  deploy:\n", "  end:\n"))
        (root / "ansible/deploy_ami.yaml").rename(root / "ansible/end_ami.yaml")
    from support.project import base_env
    repo = copy_project(tmp_path / "repo", tree=renamed)
    env = base_env(tmp_path)                        # no bucket, no endpoint, no sandbox
    mermaid = subprocess.run([sys.executable, "-m", "doit", "graph"], cwd=repo, env=env,
                             capture_output=True, text=True)
    assert mermaid.returncode == 0, mermaid.stderr
    lines = mermaid.stdout.splitlines()
    assert lines[0] == "graph TD" and lines[-1].startswith("%% offline (AMI_BUCKET is not set)")
    assert '  n3["end<br/>no AMI<br/>build"]:::missing' in lines
    assert not [l for l in lines if re.match(r"^\s+end\b", l)]          # `end` only as a label
    assert "  n1 --> n3" in lines
    dot = subprocess.run([sys.executable, "-m", "doit", "graph", "--format", "dot"], cwd=repo,
                         env=env, capture_output=True, text=True)
    # stdout holds only the graph (doit's `.  graph` line is left out unless AMI_VERBOSE)
    assert dot.stdout.startswith("digraph amis {\n") and dot.stdout.rstrip().endswith(
        "// offline (AMI_BUCKET is not set)") and ".  graph" not in dot.stdout


def test_importing_the_creators_creates_nothing_and_installs_no_handler(tmp_path):
    repo = copy_project(tmp_path / "repo")
    # Compared with what the process had before the import, not with Python's
    # defaults: started as a background job (`pytest … &`), SIGINT is ignored.
    code = ("import signal, pathlib\n"
            "before = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]\n"
            "import tasks.cli.creators as c\n"
            "creators = c.Creators(pathlib.Path('.'))\n"
            "assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == before\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (repo / ".amis").exists()
