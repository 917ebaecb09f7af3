"""The sandbox's stand-in for a test instance: an SSH server on loopback.

The emulator records a launch but runs no machine, so there is nothing to
SSH into. This server (asyncssh, in a thread of the run) accepts only the
run's temporary key and runs each command with this machine's shell, as
the user running the build. The tests then take the same path as against
a real instance: the launch, the key, SSH, testinfra and the gate, and the
clean-up afterwards. What it cannot show is the AMI's content: the
commands run here, not on the image.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from typing import Any


def _asyncssh() -> Any:
    with warnings.catch_warnings():          # its DSA support warns on import
        warnings.simplefilter("ignore")
        import asyncssh
    return asyncssh


class StandIn:
    """Serves SSH on 127.0.0.1 (``port``) for the holder of ``public_key``
    (an OpenSSH public key line) until :meth:`stop`."""

    def __init__(self, public_key: str) -> None:
        self.public_key = public_key
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> "StandIn":
        ssh = _asyncssh()
        ready = threading.Event()
        failed: list[BaseException] = []

        class Server(ssh.SSHServer):         # type: ignore[misc, name-defined]
            def password_auth_supported(self) -> bool:
                return False

        async def handle(process: Any) -> None:
            proc = await asyncio.create_subprocess_shell(
                process.command or "sh", stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)

            async def feed() -> None:
                assert proc.stdin is not None
                try:
                    while data := await process.stdin.read(65536):
                        proc.stdin.write(data)
                        await proc.stdin.drain()
                finally:
                    proc.stdin.close()

            feeding = asyncio.ensure_future(feed())
            # Read both pipes to their end before the exit status goes: an
            # exit sent first would lose output still in the pipes.
            out, err = await asyncio.gather(proc.stdout.read(), proc.stderr.read())
            code = await proc.wait()
            feeding.cancel()
            process.stdout.write(out)
            process.stderr.write(err)
            process.exit(code)

        async def serve() -> None:
            self._server = await ssh.create_server(
                Server, "127.0.0.1", 0, process_factory=handle, encoding=None,
                server_host_keys=[ssh.generate_private_key("ssh-ed25519")],
                authorized_client_keys=ssh.import_authorized_keys(self.public_key + "\n"))
            self.port = self._server.sockets[0].getsockname()[1]

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(serve())
            except BaseException as err:     # noqa: BLE001 - handed to start()
                failed.append(err)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="ssh-stand-in", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failed:
            raise failed[0]
        return self

    def stop(self) -> None:
        if self._thread is None:
            return

        async def close() -> None:
            if self._server is not None:
                self._server.close()
                await self._server.wait_closed()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        except Exception:                    # noqa: BLE001 - stopping regardless
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._thread = None
