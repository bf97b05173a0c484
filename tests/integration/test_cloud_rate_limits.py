"""A cloud that rate-limits: environment create and delete go through a proxy in front of the
devcloud's Neutron that refuses calls as a rate limiter does (429 with Retry-After, 503 with
none). Every refused call is made again, no sooner than Retry-After says, and the environment
is whole; what create made the cloud count per node stays bulk-sized."""

from __future__ import annotations

import http.client
import http.server
import os
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from ruamel.yaml import YAML

pytestmark = pytest.mark.devcloud

SPEC = """
name: {name}
cloud: devcloud
networks:
  provisioning: {{cidr: 192.168.24.0/24}}
roles:
  node: {{count: 4, flavor: qo.tiny, image: quintupleo-tiny}}
"""


class RateLimiter(http.server.ThreadingHTTPServer):
    """Neutron behind a limiter: the first `refuse` bulk port creations get 429 with
    Retry-After, the first port update a 503 without it; the rest go through."""

    def __init__(self, upstream: str, refuse: int) -> None:
        self.upstream = urlsplit(upstream)
        self.refusals: list[tuple[str, str, float]] = []   # (method, path, when)
        self.passed: list[tuple[str, str, float]] = []
        self.left = {"POST": refuse, "PUT": 1}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Forwarder)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.upstream.path}"


class Forwarder(http.server.BaseHTTPRequestHandler):
    server: RateLimiter
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _any(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        limiter, method = self.server, self.command
        parts = self.path.split("?")[0].strip("/").split("/")
        with limiter.lock:
            # a bulk port creation (POST .../ports), a port update (PUT .../ports/ID)
            refuse = limiter.left.get(method, 0) > 0 and (
                (method == "POST" and parts[-1] == "ports" and b'"ports"' in body)
                or (method == "PUT" and parts[-2:-1] == ["ports"]))
            if refuse:
                limiter.left[method] -= 1
                limiter.refusals.append((method, self.path, time.monotonic()))
            else:
                limiter.passed.append((method, self.path, time.monotonic()))
        if refuse:
            status, headers = (429, {"Retry-After": "1"}) if method == "POST" else (503, {})
            payload = b'{"error": "slow down"}'
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(limiter.upstream.hostname,
                                              limiter.upstream.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        upstream.request(method, self.path, body=body or None, headers=headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    do_GET = do_POST = do_PUT = do_DELETE = _any


def test_calls_the_cloud_refuses_for_its_rate_are_made_again_after_retry_after(
        conn, qo_env, tmp_path, tagged):
    limiter = RateLimiter(conn.network.get_endpoint(), refuse=2)
    threading.Thread(target=limiter.serve_forever, daemon=True).start()
    try:
        yaml = YAML()
        with open(os.environ.get("OS_CLIENT_CONFIG_FILE") or
                  Path.home() / ".config" / "openstack" / "clouds.yaml") as source:
            clouds = yaml.load(source)
        clouds["clouds"]["devcloud"]["network_endpoint_override"] = limiter.url
        config = tmp_path / "clouds.yaml"
        with config.open("w") as target:
            yaml.dump(clouds, target)
        qo_env.environ["OS_CLIENT_CONFIG_FILE"] = str(config)
        name = f"r{uuid.uuid4().hex[:6]}"
        spec = tmp_path / f"{name}.yaml"
        spec.write_text(SPEC.format(name=name))
        created = qo_env("create", str(spec))
        assert "4 nodes powered off" in created.stdout
        found = tagged(conn, name)
        assert len(found["ports"]) == 4 and len(found["servers"]) == 4
        assert all(p.is_admin_state_up for p in found["ports"])
        assert [m for m, _, _ in limiter.refusals] == ["POST", "POST", "PUT"], \
            limiter.refusals
        # the bulk creation made again, each time no sooner than the Retry-After second
        first, second = limiter.refusals[0][2], limiter.refusals[1][2]
        bulk = [t for m, p, t in limiter.passed if m == "POST" and p.endswith("/ports")]
        assert second - first >= 0.95 and bulk and bulk[0] - second >= 0.95, \
            (first, second, bulk)
        # one bulk creation for the four ports, not a call each
        assert len(bulk) == 1, limiter.passed
        qo_env("delete", name)
        assert not any(tagged(conn, name).values())
    finally:
        limiter.shutdown()
        limiter.server_close()
