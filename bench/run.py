#!/usr/bin/env python3
"""Benchmarks: no-op speed and memory, fresh clones, one-role changes,
parallel full rebuilds against the critical path, the Make approach side by
side, and parallel pull. Everything runs against moto_server on loopback.

    .venv/bin/python bench/run.py [--repeats 5] [--sleep 4] [--out bench/results.json]

Prints one table and writes it as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from generate import generate, makefile  # noqa: E402
from tasks.adapters import emulator  # noqa: E402
from tasks.core.digest import Hasher  # noqa: E402
from tasks.core.graph import load_graph  # noqa: E402
from tasks.inputs.image import image_inputs  # noqa: E402
from tasks.cli.compose import App  # noqa: E402

FAKE_PACKER = BENCH / "fake_packer.py"
FLOOR = ("import boto3\n"
         "boto3.client('s3', region_name='eu-west-1')\n"
         "boto3.client('ec2', region_name='eu-west-1')\n")
# The floor exiting as doit amis does (dodo.py: no last collection at teardown),
# so that the ratio is also given without that 0.2 s in our favour.
FLOOR_FROZEN = "import atexit, gc\natexit.register(gc.freeze)\n" + FLOOR
TIME = shutil.which("time") or "/usr/bin/time"
ROWS: list[dict] = []


def stats(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def row(figure: str, workload: str, values: list[float] | None, unit: str,
        target: str = "", met: bool | None = None, note: str = "") -> None:
    entry = {"figure": figure, "workload": workload, "unit": unit, "target": target,
             "met": met, "note": note, **(stats(values) if values else {})}
    ROWS.append(entry)
    spread = f"{entry['min']:.2f}-{entry['max']:.2f}" if values else ""
    median = f"{entry['median']:.2f}" if values else ""
    mark = {True: "yes", False: "NO", None: ""}[met]
    print(f"  {figure:<44} {workload:<14} {median:>9} {spread:>13} {unit:<6} {target:<10} "
          f"{mark:<4} {note}", flush=True)


class Tree:
    def __init__(self, path: Path, name: str, endpoint: str, validate: bool):
        self.path, self.name = path, name
        self.count = path.parent / f"{name}-packer-runs"
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("AWS_", "AMI_", "BUILDKITE"))}
        self.env.update({"AWS_ENDPOINT_URL": endpoint, "AMI_SANDBOX": "1",
                         "AMI_BUCKET": f"bench-{name}", "AWS_ACCESS_KEY_ID": "test",
                         "AWS_SECRET_ACCESS_KEY": "test", "AWS_REGION": "eu-west-1",
                         "PACKER": str(FAKE_PACKER), "FAKE_PACKER_SLEEP": "0",
                         "FAKE_PACKER_COUNT": str(self.count), "CHECKPOINT_DISABLE": "1",
                         "AMI_ALLOW_DIRTY": "1", "AMI_LOCK_POLL_SECONDS": "0.2"})
        if not validate:
            self.env["AMI_SKIP_VALIDATE"] = "1"
        # A warm run, as on any machine that keeps Python's bytecode (some CI
        # images set PYTHONDONTWRITEBYTECODE, which recompiles every module).
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)

    def run(self, *args: str, env: dict | None = None, cwd: Path | None = None,
            measure_memory: bool = False) -> tuple[float, float | None, str]:
        """Wall seconds, peak RSS in MB (if asked), output."""
        argv = [sys.executable, "-m", "doit", *args]
        if measure_memory:
            argv = [TIME, "-f", "MAXRSS %M", *argv]
        started = time.perf_counter()
        done = subprocess.run(argv, cwd=cwd or self.path, env={**self.env, **(env or {})},
                              capture_output=True, text=True)
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{self.name}: doit {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        rss = None
        if measure_memory:
            m = re.search(r"MAXRSS (\d+)", done.stderr)
            rss = int(m.group(1)) / 1024 if m else None
        return wall, rss, done.stdout

    def builds(self) -> list[str]:
        runs = self.count.read_text().split() if self.count.exists() else []
        self.count.unlink(missing_ok=True)
        return runs

    def python(self, code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], cwd=self.path, env=self.env, check=True)
        return time.perf_counter() - started


def example_tree(dest: Path) -> Path:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True)
    return dest


def noop_figures(tree: Tree, repeats: int, target_s: float | None) -> None:
    walls, rss, floor, frozen = [], [], [], []
    for _ in range(repeats):             # the floors interleaved: all see the same machine
        wall, mem, _ = tree.run("amis", measure_memory=True)
        walls.append(wall)
        rss.append(mem or 0)
        floor.append(tree.python(FLOOR))
        frozen.append(tree.python(FLOOR_FROZEN))
    builds = tree.builds()
    row("1. no-op doit amis: wall", tree.name, walls, "s", f"< {target_s} s" if target_s else "",
        statistics.median(walls) < target_s if target_s else None, f"Packer runs: {len(builds)}")
    # The least a no-op can cost: Python, boto3 and the two clients it needs (S3, EC2).
    ratio = statistics.median(walls) / statistics.median(floor)
    most = 1.3 if tree.name == "example" else 2.0
    row("   floor: python, import boto3, 2 clients", tree.name, floor, "s")
    row("   no-op / floor", tree.name, [ratio], "x", f"<= {most}", ratio <= most)
    row("   floor, exiting as doit amis does", tree.name, frozen, "s")
    row("   no-op / that floor", tree.name, [statistics.median(walls) / statistics.median(frozen)],
        "x", note="no target: the same floor without teardown's last collection")
    row("1. no-op doit amis: peak memory", tree.name, rss, "MB", "< 200 MB",
        max(rss) < 200)
    imports = [tree.python("import doit.doit_cmd, tasks.cli.creators") for _ in range(repeats)]
    listing = [tree.run("list")[0] for _ in range(repeats)]
    pulls = [tree.run("pull")[0] for _ in range(repeats)]
    row("   split: process start + imports", tree.name, imports, "s")
    row("   split: task definition (graph, inputs)", tree.name,
        [max(l - i, 0) for l, i in zip(listing, imports)], "s")
    row("   split: pull (S3) + AMI check", tree.name,
        [max(p - l, 0) for p, l in zip(pulls, listing)], "s")
    row("   split: the rest (doit up-to-date checks)", tree.name,
        [max(w - p, 0) for w, p in zip(walls, pulls)], "s")
    graph = load_graph(tree.path)
    files = sorted({f for image in graph.images.values() for f in image_inputs(graph, image).files})
    hashing = []
    for _ in range(repeats):
        started = time.perf_counter()
        Hasher().manifest(graph.root, files)
        hashing.append(time.perf_counter() - started)
    row("   hashing every input once (sha256)", tree.name, hashing, "s",
        note=f"{len(files)} files, {sum((graph.root / f).stat().st_size for f in files) / 1e6:.0f} MB")


def unreachable_figures(tree: Tree, repeats: int) -> None:
    """How long until an unreachable endpoint (a closed port) is reported."""
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "doit", "amis"], cwd=tree.path,
                              env={**tree.env, "AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
                              capture_output=True, text=True)
        walls.append(time.perf_counter() - started)
        assert done.returncode != 0 and "cannot reach" in done.stderr, done.stderr
    row("   unreachable endpoint: time to its one line", tree.name, walls, "s", "<= 5 s",
        statistics.median(walls) <= 5)


def staging_figures(tree: Tree, repeats: int) -> None:
    """What it costs to stage every image's inputs (copies, hashed as staged), as builds do."""
    from tasks.adapters import stage
    app = App.load(tree.path, tree.env)
    names = list(app.graph.images)
    files = sum(len(app.checkout.inputs()[n].files) for n in names)
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        for name in names:
            with stage.staged(app.graph.root, app.settings.stage, name,
                              app.checkout.manifest(name)):
                pass
        walls.append(time.perf_counter() - started)
    row("   staging every image's inputs once", tree.name, walls, "s",
        note=f"{len(names)} stages, {files} files copied; "
             f"{statistics.median(walls) / len(names) * 1000:.1f} ms per image")


def fresh_clone_figures(tree: Tree, repeats: int, target_s: float) -> None:
    """A new agent: a fresh clone, no .amis/ (no doit database, no records), validation on."""
    walls, runs = [], 0
    for i in range(repeats):
        clone = tree.path.parent / f"{tree.name}-clone-{i}"
        subprocess.run(["git", "clone", "-q", str(tree.path), str(clone)], check=True)
        walls.append(tree.run("amis", cwd=clone, env={"AMI_SKIP_VALIDATE": ""})[0])
        runs += len(tree.builds())
        shutil.rmtree(clone)
    row("2. no-op right after a fresh clone", tree.name, walls, "s", f"<= {target_s} s",
        statistics.median(walls) <= target_s and runs == 0, f"Packer runs: {runs}")


def one_role_change(tree: Tree) -> None:
    graph = load_graph(tree.path)
    images = list(graph.images)
    victim = images[len(images) // 3]
    role_file = next(f for f in image_inputs(graph, graph.images[victim]).files if "/roles/" in f)
    # Images that read the file, and everything built on them (their parent AMI changes).
    direct = [n for n, i in graph.images.items() if role_file in image_inputs(graph, i).files]
    expected = sorted(set(direct) | {d for n in direct for d in graph.descendants(n)})
    with open(tree.path / role_file, "a") as f:
        f.write("\n# bench change\n")
    wall, _, _ = tree.run("amis")
    built = sorted(tree.builds())
    row("3. one role file changed: images rebuilt", tree.name, [float(len(built))], "images",
        f"= {len(expected)}", built == expected,
        f"{role_file}: read by {len(direct)}, built on by {len(expected) - len(direct)}; "
        f"{wall:.1f} s")


def full_rebuild(tree: Tree, sleep: float, repeats: int, depth: int) -> None:
    graph = load_graph(tree.path)
    width = graph.width
    walls = []
    for i in range(repeats):
        root_image = next(iter(graph.images.values()))
        with open(tree.path / root_image.playbook, "a") as f:
            f.write(f"\n# bench full rebuild {i}\n")
        walls.append(tree.run("amis", "-n", str(width), "-P", "thread",
                              env={"FAKE_PACKER_SLEEP": str(sleep), "AMI_SKIP_VALIDATE": "1"})[0])
        tree.builds()
    critical = depth * sleep
    sequential = len(graph.images) * sleep
    row(f"4. full rebuild, {sleep:g} s per image, -n {width}", tree.name, walls, "s",
        f"<= {critical * 1.15:.1f} s", statistics.median(walls) <= critical * 1.15,
        f"critical path {critical:g} s, sequential {sequential:g} s (validation not included)")


def make_figures(tree: Tree, parents: dict[str, str], repeats: int, ours_noop: float) -> None:
    (tree.path / "Makefile").write_text(makefile(parents, tree.env["AMI_BUCKET"]))
    # The stand-ins' `python3` is this one, which has boto3 (./doit's environment).
    env = {**tree.env, "PACKER": str(FAKE_PACKER), "PATH": os.pathsep.join(
        [str(BENCH / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])}
    make = ["make", "-s", "amis"]
    # S3 keeps LastModified to the second: build a second after the sources were
    # written, or Make would see every source as newer than its download.
    time.sleep(1.1)
    subprocess.run(make, cwd=tree.path, env=env, check=True, capture_output=True)   # first build
    tree.builds()
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(make, cwd=tree.path, env=env, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    noop_builds = len(tree.builds())
    row("5. Make approach: no-op (aws s3 cp + make)", tree.name, walls, "s",
        note=f"rebuilt {noop_builds}; ours/Make = {ours_noop / statistics.median(walls):.2f}")
    clone = tree.path.parent / f"{tree.name}-make-clone"
    subprocess.run(["git", "clone", "-q", str(tree.path), str(clone)], check=True)
    shutil.copy2(tree.path / "Makefile", clone / "Makefile")
    time.sleep(1.1)     # the clone's files must be newer than the uploads, as on a new agent
    for path in clone.rglob("*"):
        if ".git" not in path.parts and path.is_file():
            os.utime(path)
    subprocess.run(make, cwd=clone, env=env, check=True, capture_output=True)
    make_fresh = len(tree.builds())
    ours_clone = tree.path.parent / f"{tree.name}-ours-clone"
    subprocess.run(["git", "clone", "-q", str(tree.path), str(ours_clone)], check=True)
    tree.run("amis", cwd=ours_clone)
    ours_fresh = len(tree.builds())
    row("5. fresh clone: images rebuilt, Make", tree.name, [float(make_fresh)], "images",
        f"= {len(parents)}", make_fresh == len(parents))
    row("5. fresh clone: images rebuilt, ours", tree.name, [float(ours_fresh)], "images",
        "= 0", ours_fresh == 0)


def pull_figures(tree: Tree, repeats: int) -> None:
    """A pull with nothing held locally: a listing, then a GET of every record."""
    app = App.load(tree.path, tree.env)
    saved = dict(os.environ)
    os.environ.update({k: v for k, v in tree.env.items() if k.startswith("AWS_")})
    names = app.graph.names
    try:
        timings = {}
        for threads in (16, 1):
            app.registry.threads = threads
            values = []
            for _ in range(repeats):
                started = time.perf_counter()
                app.registry.pull("main", names, {})
                values.append(time.perf_counter() - started)
            timings[threads] = values
    finally:
        os.environ.clear()
        os.environ.update(saved)
    row(f"6. pull of {len(names)} records, 16 threads", tree.name, timings[16], "s",
        note=f"sequential/parallel = "
             f"{statistics.median(timings[1]) / statistics.median(timings[16]):.1f}x")
    row(f"6. pull of {len(names)} records, sequential", tree.name, timings[1], "s")


def provenance_figures(tree: Tree, repeats: int) -> None:
    """Signing one image's statement (KMS GetPublicKey once per run, Sign,
    the envelope PUT, the Provenance tags) and `doit verify` of web (2
    links, each commit written out and walked), in process."""
    import io

    import boto3

    from tasks.core.settings import load_settings
    kms = boto3.client("kms", endpoint_url=tree.env["AWS_ENDPOINT_URL"], region_name="eu-west-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    key = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    env = {**tree.env, "AMI_SIGNING_KEY": key}
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):    # boto3 reads them here
        os.environ[name] = tree.env[name]
    with open(tree.path / "ansible/base_ami.yaml", "a") as f:      # every image rebuilt, signed
        f.write("\n# bench provenance\n")
    subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.invalid",
                    "commit", "-qam", "bench provenance"], cwd=tree.path, check=True)
    tree.run("amis", env=env)
    tree.builds()
    from tasks.adapters.console import Console
    from tasks.core.graph import load_graph as graph_of
    signs, verifies = [], []
    for _ in range(repeats):
        app = App(load_settings(tree.path, env), graph_of(tree.path),
                  console=Console(out=io.StringIO()))
        app.lookup.pull()
        record = app.lookup.record("web")
        log = tree.path / "amis.yaml"            # any file: its sha256 goes in the statement
        started = time.perf_counter()
        app.attester.sign(record, log, app.lookup.record("base"))
        signs.append(time.perf_counter() - started)
        started = time.perf_counter()
        app.verifier.verify("", "web", "", False)
        verifies.append(time.perf_counter() - started)
    row("provenance: sign one image (in process)", tree.name, [s * 1000 for s in signs], "ms",
        note="first of a run: includes GetPublicKey")
    row("provenance: verify web, 2 links (in process)", tree.name,
        [v * 1000 for v in verifies], "ms", note="each commit exported and walked")


def acceptance_figures(tree: Tree, repeats: int) -> None:
    """What the acceptance stage adds to one image's build: `doit test -i base`
    is the stage alone (launch in the emulator, the sandbox's stand-in, pytest
    with testinfra over SSH, the clean-up); the no-op tests nothing."""
    walls = [tree.run("test", "-i", "base")[0] for _ in range(repeats)]
    row("acceptance stage of one image (sandbox)", tree.name, walls, "s",
        note="launch + stand-in SSH + pytest/testinfra + clean-up")


def real_packer(tree: Tree, repeats: int) -> None:
    if not shutil.which("packer"):
        row("real Packer, example tree full build", tree.name, None, "s", note="packer not installed")
        return
    walls = []
    for i in range(repeats):
        with open(tree.path / "ansible/base_ami.yaml", "a") as f:
            f.write(f"\n# bench real packer {i}\n")
        walls.append(tree.run("amis", env={"PACKER": "packer"})[0])
    row("real Packer + emulator: 5 images rebuilt", tree.name, walls, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sleep", type=float, default=4.0, help="stand-in Packer seconds per image")
    parser.add_argument("--out", default=str(BENCH / "results.json"))
    parser.add_argument("--quick", action="store_true",
                        help="only the no-op and fresh-clone figures (not written to --out)")
    parser.add_argument("--provenance", action="store_true",
                        help="with --quick: the signing and verify figures too")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="amis-bench-"))
    port = emulator.free_port()
    server = emulator.spawn(port, ROOT, log=work / "moto.log")
    endpoint = f"http://127.0.0.1:{port}"
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"emulator {endpoint}; work in {work}\n")
    print(f"  {'figure':<44} {'workload':<14} {'median':>9} {'min-max':>13} {'unit':<6} "
          f"{'target':<10} {'met':<4} note")
    try:
        emulator.wait_until_listening(port, server)
        example = Tree(example_tree(work / "example"), "example", endpoint, validate=True)
        example.run("amis")
        example.builds()
        noop_figures(example, args.repeats, 1.0)
        fresh_clone_figures(example, min(args.repeats, 3), 1.0)
        unreachable_figures(example, min(args.repeats, 3))
        if args.provenance or not args.quick:
            provenance_figures(example, args.repeats)
        acceptance_figures(example, min(args.repeats, 3))
        if not args.quick:
            one_role_change(example)
            real_packer(example, min(args.repeats, 3))
            full_rebuild(example, args.sleep, min(args.repeats, 3), depth=2)
        ours = {}
        for images, target in ((20, None), (100, 2.5)) if not args.quick else ((100, 2.5),):
            name = f"gen{images}"
            parents = generate(work / name, images)
            tree = Tree(work / name, name, endpoint, validate=False)
            tree.run("amis", "-n", "8", "-P", "thread")
            tree.builds()
            noop_figures(tree, args.repeats, target)
            ours[images] = next(r["median"] for r in ROWS if r["workload"] == name
                                and r["figure"] == "1. no-op doit amis: wall")
            fresh_clone_figures(tree, min(args.repeats, 3), target or 2.5)
            staging_figures(tree, min(args.repeats, 3))
            if args.quick:
                continue
            one_role_change(tree)
            if images == 20:
                make_figures(tree, parents, min(args.repeats, 3), ours[images])
            if images == 100:
                pull_figures(tree, args.repeats)
                full_rebuild(tree, args.sleep, 2, depth=4)
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": {"node": platform.node(), "cores": os.cpu_count(),
                          "python": platform.python_version(), "platform": platform.platform()},
              "rows": ROWS}
    if not args.quick:
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
