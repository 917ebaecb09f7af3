"""The local AWS emulator behind the sandbox: moto's server on loopback.

``python -m tasks.adapters.emulator --port N`` serves it in the foreground (tests
use this); :func:`ensure` starts it in the background once and later runs
reuse it, so a second sandbox run finds the first run's AMIs; :func:`stop`
ends it (``doit sandbox_stop``).
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..core.errors import AmiError, FAILED

HOST = "127.0.0.1"
START_TIMEOUT = 30.0


def _patch_ebs_root_device() -> None:
    """moto 5.2 gives every AMI made by CreateImage the root device type
    'standard'; Packer refuses such a source, so no child image could build
    on a parent built here. Real AMIs of EBS instances say 'ebs'."""
    from moto.ec2.models import amis

    original = amis.Ami.__init__

    @functools.wraps(original)
    def init(self, *args, **kwargs):
        kwargs.setdefault("root_device_type", "ebs")
        original(self, *args, **kwargs)

    amis.Ami.__init__ = init


def _patch_query_signing() -> None:
    """With IAM enforced, moto 5.2 checks each request's SigV4 signature over
    a URL it rebuilds with '/' in query values unescaped; clients sign them
    escaped (%2F), as AWS's canonical query string has them, so every S3
    listing with a prefix failed with SignatureDoesNotMatch. Escape them as
    the clients do before the check."""
    from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

    from moto.iam import access_control

    original = access_control.IAMRequestBase._create_aws_request

    @functools.wraps(original)
    def create(self):
        request = original(self)
        parts = urlsplit(request.url)
        if parts.query:
            pairs = parse_qsl(parts.query, keep_blank_values=True)
            query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in pairs)
            request.url = urlunsplit(parts._replace(query=query))
        return request

    access_control.IAMRequestBase._create_aws_request = create


def serve(port: int) -> None:
    _patch_ebs_root_device()
    _patch_query_signing()
    from moto.server import ThreadedMotoServer

    # SIGTERM and Ctrl-C are taken synchronously (sigwait), blocked in every
    # thread from the start: no handler runs in the middle of the server's
    # start or of a lock the main thread holds.
    stops = {signal.SIGTERM, signal.SIGINT}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)
    server = ThreadedMotoServer(ip_address=HOST, port=port, verbose=False)
    server.start()
    print(f"emulator listening on http://{HOST}:{port}", flush=True)
    signal.sigwait(stops)
    server.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something listens on the port. A connect to a free port in the
    ephemeral range can, rarely, connect the socket to itself: that is no
    server."""
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as sock:
            return sock.getsockname() != sock.getpeername()
    except OSError:
        return False


def wait_until_listening(port: int, proc: subprocess.Popen | None = None,
                         timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not listening(port):
        if proc is not None and proc.poll() is not None:
            raise AmiError(f"the AWS emulator exited with {proc.returncode} at start: "
                           "is moto[server] installed? (bash .ci/install)", code=FAILED)
        if time.monotonic() > deadline:
            raise AmiError(f"the AWS emulator did not listen on {HOST}:{port} "
                           f"within {timeout:.0f} s", code=FAILED)
        time.sleep(0.05)


def spawn(port: int, cwd: Path, log: Path | None = None, detach: bool = False) -> subprocess.Popen:
    out = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "tasks.adapters.emulator", "--port", str(port)],
                            cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=detach)


def alive(pid: int) -> bool:
    """Running, and not a zombie (a detached emulator is reaped by init, late)."""
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return "\nState:\tZ" not in status


def ensure(root: Path, state: Path, say: Callable[[str], None] = lambda text: None) -> str:
    """The running sandbox emulator's URL, starting it if needed (and then
    saying so: it outlives the run)."""
    state.mkdir(parents=True, exist_ok=True)
    info_file = state / "emulator.json"
    with (state / "emulator.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            info = json.loads(info_file.read_text())
            if alive(info["pid"]) and listening(info["port"]):
                return f"http://{HOST}:{info['port']}"
        except (OSError, ValueError, KeyError, TypeError):
            pass
        port = free_port()
        proc = spawn(port, root, log=state / "emulator.log", detach=True)
        wait_until_listening(port, proc)
        info_file.write_text(json.dumps({"pid": proc.pid, "port": port}))
        say(f"started the sandbox's AWS emulator in the background on http://{HOST}:{port}; "
            "it keeps the sandbox's AMIs and records between runs until "
            "AMI_SANDBOX=1 ./doit sandbox_stop")
        return f"http://{HOST}:{port}"


def stop(state: Path) -> str:
    info_file = state / "emulator.json"
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError):
        return "no sandbox emulator is running"
    pid = info.get("pid", -1)
    if alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    info_file.unlink(missing_ok=True)
    return f"stopped the sandbox emulator on port {info.get('port')}; its AMIs and records are gone"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    serve(parser.parse_args().port)
