"""A fault-injecting HTTP proxy on loopback, in front of the emulator.

Requests pass through unchanged, except those a rule matches: a rule can
fail a request (an S3-style 500, or a dropped connection), or hold it until
the test releases it, or answer it in the emulator's place (for a call the
emulator lacks), so a race or a failing request happens at exactly the
chosen point, without sleeps.

    proxy = FaultProxy(emulator_url)
    held = proxy.hold(lambda r: r.action == "DeregisterImage")
    ...
    held.arrived.wait(30)      # the request is at the proxy, not yet forwarded
    held.release.set()         # forward it now
"""

from __future__ import annotations

import http.client
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


@dataclass
class Request:
    method: str
    raw: str                    # the request target as sent: path and query
    path: str                   # without the query
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def action(self) -> str:
        """The EC2/SSM-style Action of a form-encoded request, if any."""
        if "Action" in self.query:
            return self.query["Action"]
        form = urllib.parse.parse_qs(self.body.decode("latin-1")) if self.body else {}
        return (form.get("Action") or [""])[0]

    def form(self, key: str) -> str:
        values = urllib.parse.parse_qs(self.body.decode("latin-1")).get(key) or [""]
        return values[0]

    def is_s3(self, method: str, key_part: str) -> bool:
        return self.method == method and key_part in urllib.parse.unquote(self.path)


@dataclass
class Rule:
    match: Callable[[Request], bool]
    kind: str                              # "fail", "drop", "hold"
    times: int | None = None               # None: every time
    status: int = 500
    body: bytes = b""                      # "answer": the reply, instead of the emulator's
    transform: Callable[[bytes], bytes] | None = None    # "rewrite": the emulator's reply, changed
    hits: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    def take(self, request: Request) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        if not self.match(request):
            return False
        self.hits += 1
        return True


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parsed = urllib.parse.urlparse(upstream)
        self.upstream = (parsed.hostname, parsed.port)
        self.rules: list[Rule] = []
        self.seen: list[Request] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0], 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _handle(self) -> None:
                url = urllib.parse.urlparse(self.path)
                request = Request(self.command, self.path, url.path,
                                  dict(urllib.parse.parse_qsl(url.query, keep_blank_values=True)),
                                  {k: v for k, v in self.headers.items()}, self._body())
                with proxy.lock:
                    proxy.seen.append(request)
                    rule = next((r for r in proxy.rules if r.take(request)), None)
                if rule is not None and rule.kind == "hold":
                    rule.arrived.set()
                    rule.release.wait(120)
                elif rule is not None and rule.kind == "lose":
                    self._forward(request, answer=False)     # done upstream; the reply is lost
                    self.close_connection = True
                    self.connection.close()
                    return
                elif rule is not None and rule.kind == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                elif rule is not None and rule.kind in ("fail", "answer"):
                    body = rule.body if rule.kind == "answer" else (
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InternalError"
                        b"</Code><Message>injected by the test proxy</Message></Error>")
                    self.send_response(rule.status)
                    self.send_header("Content-Type", "application/xml")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                self._forward(request, rewrite=rule.transform if rule is not None
                              and rule.kind == "rewrite" else None)

            def _forward(self, request: Request, answer: bool = True,
                         rewrite: Callable[[bytes], bytes] | None = None) -> None:
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=120)
                headers = {k: v for k, v in request.headers.items()
                           if k.lower() not in ("transfer-encoding", "content-length",
                                                "connection")}
                headers["Content-Length"] = str(len(request.body))
                conn.request(request.method, self.path, body=request.body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                if rewrite is not None:
                    data = rewrite(data)
                if not answer:
                    conn.close()
                    return
                self.send_response(response.status)
                for key, value in response.getheaders():
                    if key.lower() not in ("transfer-encoding", "content-length", "connection",
                                           "server", "date"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                conn.close()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, match: Callable[[Request], bool], kind: str, times: int | None = None,
            status: int = 500) -> Rule:
        rule = Rule(match, kind, times, status)
        with self.lock:
            self.rules.append(rule)
        return rule

    def fail(self, match: Callable[[Request], bool], times: int | None = None,
             status: int = 500) -> Rule:
        return self.add(match, "fail", times, status)

    def answer(self, match: Callable[[Request], bool], body: bytes, status: int = 200) -> Rule:
        """Reply with ``body`` and never forward: for a call the emulator lacks."""
        rule = Rule(match, "answer", None, status, body)
        with self.lock:
            self.rules.append(rule)
        return rule

    def rewrite(self, match: Callable[[Request], bool],
                transform: Callable[[bytes], bytes]) -> Rule:
        """Forward, then change the emulator's reply: for what it cannot say."""
        rule = Rule(match, "rewrite", transform=transform)
        with self.lock:
            self.rules.append(rule)
        return rule

    def lose(self, match: Callable[[Request], bool], times: int | None = 1) -> Rule:
        """Forward the request, then close the connection: done, but no reply."""
        return self.add(match, "lose", times)

    def hold(self, match: Callable[[Request], bool], times: int | None = 1) -> Rule:
        return self.add(match, "hold", times)

    def clear(self) -> None:
        with self.lock:
            for rule in self.rules:
                rule.release.set()
            self.rules.clear()

    def count(self, match: Callable[[Request], bool]) -> int:
        with self.lock:
            return sum(1 for r in self.seen if match(r))

    def close(self) -> None:
        self.clear()
        self.server.shutdown()
        self.server.server_close()
