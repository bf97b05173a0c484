"""Redfish against an attacker: bodies that are not JSON or nest without end, unknown
charsets, non-ASCII digits, guessed passwords, malformed HTTP floods, slow and many clients,
and property-based bodies and headers (Hypothesis)."""

from __future__ import annotations

import json
import socket
import ssl
import time

import psutil
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

SESSIONS = "/redfish/v1/SessionService/Sessions"
RESET = "/redfish/v1/Systems/fake-0/Actions/ComputerSystem.Reset"
ADMIN = ("admin", "password")


def call(bmc, method: str, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", 10)
    return requests.request(method, f"{bmc.redfish_url}{path}",
                            verify=str(bmc.state_dir / "redfish-cert.pem"), **kwargs)


def message_id(response: requests.Response) -> str:
    return response.json()["error"]["@Message.ExtendedInfo"][0]["MessageId"]


def power(bmc) -> str:
    return call(bmc, "GET", "/redfish/v1/Systems/fake-0", auth=ADMIN).json()["PowerState"]


def test_bodies_that_are_not_plain_json_are_refused(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    deep = '{"UserName":' + '{"a":' * 5000 + "1" + "}" * 5001
    answer = call(bmc, "POST", SESSIONS, data=deep, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and message_id(answer) == "Base.1.22.MalformedJSON"
    bogus = call(bmc, "POST", SESSIONS, data="{}",
                 headers={"Content-Type": "application/json; charset=bogus"})
    assert bogus.status_code == 415 and message_id(bogus) == "Base.1.22.HeaderInvalid"
    body = '{"ResetType": "On"}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "application/json; charset=latin-1"):
        refused = call(bmc, "POST", RESET, auth=ADMIN, data=body,
                       headers={"Content-Type": content_type})
        assert refused.status_code == 415, content_type
    no_type = call(bmc, "POST", RESET, auth=ADMIN, data=body.encode())   # no Content-Type
    assert no_type.status_code == 415
    assert power(bmc) == "Off"                             # none of them acted
    assert call(bmc, "POST", RESET, auth=ADMIN, json={"ResetType": "On"}).status_code == 204
    utf8 = call(bmc, "PATCH", "/redfish/v1/Systems/fake-0", auth=ADMIN, data=b"{}",
                headers={"Content-Type": "application/json;charset=UTF-8"})
    assert utf8.status_code == 200
    nan = call(bmc, "PATCH", "/redfish/v1/Systems/fake-0", auth=ADMIN, data='{"x": NaN}',
               headers={"Content-Type": "application/json"})
    assert nan.status_code == 400
    digit = call(bmc, "GET", "/redfish/v1/Systems/fake-0/EthernetInterfaces/\u0661", auth=ADMIN)
    assert digit.status_code == 404
    bmc.stop()
    assert "Traceback" not in bmc.log and "RecursionError" not in bmc.log


def test_guessed_passwords_are_slowed_and_locked_out(bmc_server, config):
    bmc = bmc_server("--fake-nodes", "1", *config(account_lockout_threshold=4,
                                                  account_lockout_duration=4))
    ops = call(bmc, "POST", "/redfish/v1/AccountService/Accounts", auth=ADMIN,
               json={"UserName": "ops", "Password": "ops-pw", "RoleId": "Operator"})
    assert ops.status_code == 201
    account = ops.headers["Location"]
    took = []
    for guess in range(4):
        started = time.monotonic()
        wrong = call(bmc, "GET", "/redfish/v1/Systems", auth=("ops", f"guess-{guess}"))
        took.append(time.monotonic() - started)
        assert wrong.status_code == 401
    assert took[3] >= took[0] + 0.3                    # each failure answers a little later
    locked = call(bmc, "GET", "/redfish/v1/Systems", auth=("ops", "ops-pw"))
    assert locked.status_code == 401 and int(locked.headers["Retry-After"]) >= 1
    login = call(bmc, "POST", SESSIONS, json={"UserName": "ops", "Password": "ops-pw"})
    assert login.status_code == 401                    # the session login too
    assert call(bmc, "GET", account, auth=ADMIN).json()["Locked"] is True
    service = call(bmc, "GET", "/redfish/v1/AccountService", auth=ADMIN).json()
    assert (service["AccountLockoutThreshold"], service["AccountLockoutDuration"]) == (4, 4)
    unlock = call(bmc, "PATCH", account, auth=ADMIN, json={"Locked": False})
    assert unlock.status_code == 200 and unlock.json()["Locked"] is False
    assert call(bmc, "GET", "/redfish/v1/Systems", auth=("ops", "ops-pw")).status_code == 200
    assert call(bmc, "PATCH", account, auth=ADMIN, json={"Locked": True}).status_code == 400
    for guess in range(4):                             # locked again; it ends by itself
        call(bmc, "GET", "/redfish/v1/Systems", auth=("ops", f"again-{guess}"))
    assert call(bmc, "GET", "/redfish/v1/Systems", auth=("ops", "ops-pw")).status_code == 401
    time.sleep(4.5)
    assert call(bmc, "GET", "/redfish/v1/Systems", auth=("ops", "ops-pw")).status_code == 200
    log = bmc.log
    assert "user name 'ops' now locked out for 4 s" in log and "guess-" not in log


def _tls(bmc) -> socket.socket:
    context = ssl.create_default_context(cafile=str(bmc.state_dir / "redfish-cert.pem"))
    raw = socket.create_connection(("127.0.0.1", bmc.port_base), timeout=10)
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _closed_by_server(sock: socket.socket, within: float) -> bool:
    sock.settimeout(within)
    try:
        return sock.recv(1) == b""
    except (ConnectionError, ssl.SSLError):
        return True
    except TimeoutError:
        return False


def test_slow_and_many_clients_are_let_go(bmc_server, config):
    bmc = bmc_server("--fake-nodes", "1", *config(redfish_idle_timeout=2))
    process = psutil.Process(bmc.proc.pid)
    before = process.memory_info().rss
    slow_headers = []
    for _ in range(300):                      # TLS done, headers never finished
        sock = _tls(bmc)
        sock.sendall(b"GET /redfish/v1 HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow_headers.append(sock)
    silent = [socket.create_connection(("127.0.0.1", bmc.port_base)) for _ in range(200)]
    slow_body = _tls(bmc)                     # a body promised and never sent
    slow_body.sendall(b"POST " + SESSIONS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 100\r\n\r\n{\"User")
    idle = requests.Session()                 # a keep-alive connection left idle
    cert = str(bmc.state_dir / "redfish-cert.pem")   # per call: REQUESTS_CA_BUNDLE would win
    assert idle.get(f"{bmc.redfish_url}/redfish/v1", verify=cert, timeout=10).status_code == 200
    started = time.monotonic()
    assert call(bmc, "GET", "/redfish/v1/Systems", auth=ADMIN).status_code == 200   # meanwhile
    assert time.monotonic() - started < 2
    grown = process.memory_info().rss - before
    time.sleep(2.5)
    assert all(_closed_by_server(sock, 2) for sock in slow_headers)
    assert all(_closed_by_server(sock, 2) for sock in silent)
    slow_body.settimeout(5)
    assert b"408" in slow_body.recv(4096).split(b"\r\n")[0]
    for sock in [*slow_headers, *silent, slow_body]:
        sock.close()
    # the idle connection was closed by the BMC; requests reconnects on its own
    assert idle.get(f"{bmc.redfish_url}/redfish/v1", verify=cert, timeout=10).status_code == 200
    assert len(process.net_connections(kind="tcp")) < 20
    assert grown < 200 * 1024 * 1024
    bmc.stop()
    assert "Traceback" not in bmc.log


def test_a_flood_of_malformed_http_is_a_few_log_lines(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    lines_before = len(bmc.log.splitlines())
    garbage = [b"GARBAGE\r\n\r\n", b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
               b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n",
               b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % n for n in range(100)) + b"\r\n",
               b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"]
    statuses = set()
    for index in range(1000):
        with _tls(bmc) as sock:
            sock.sendall(garbage[index % len(garbage)])
            first = sock.recv(4096).split(b"\r\n")[0]
            statuses.add(first.split()[1] if first else b"closed")
    assert statuses <= {b"400", b"413", b"414", b"431", b"closed"}, statuses
    assert call(bmc, "GET", "/redfish/v1", auth=ADMIN).status_code == 200
    bmc.stop()
    lines = bmc.log.splitlines()[lines_before:]
    assert len(lines) < 20, "\n".join(lines[:30])
    assert any("more malformed HTTP lines dropped" in line for line in lines)
    assert "Traceback" not in bmc.log


# ---- property-based: any body, any header --------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
                    | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["ResetType", "Boot", "Image", "UserName",
                                                       "Password", "RoleId", "Locked", "Oem",
                                                       "BootSourceOverrideTarget", "Attributes",
                                                       "Inserted", "x"]) | st.text(max_size=8),
                                      inner, max_size=4), max_leaves=40)
DEEP = st.integers(1, 40).map(lambda n: '{"Boot":' * n + "1" + "}" * n)
BODIES = st.one_of(JSON.map(json.dumps), DEEP, st.text(max_size=200),
                   st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
CONTENT_TYPES = st.sampled_from(["application/json", "application/json; charset=utf-8",
                                 "application/json; charset=bogus", "text/plain",
                                 "application/x-www-form-urlencoded", "", "*/*",
                                 "application/json; charset="])
TARGETS = st.sampled_from([
    ("POST", SESSIONS), ("POST", RESET), ("PATCH", "/redfish/v1/Systems/fake-0"),
    ("PATCH", "/redfish/v1/Systems/fake-0/Bios/Settings"), ("PATCH", "/redfish/v1/Chassis/fake-0"),
    ("POST", "/redfish/v1/Managers/fake-0/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia"),
    ("PATCH", "/redfish/v1/Managers/fake-0/VirtualMedia/Cd"),
    ("POST", "/redfish/v1/AccountService/Accounts"),
    ("PATCH", "/redfish/v1/AccountService/Accounts/1"),
    ("POST", "/redfish/v1/EventService/Subscriptions"), ("PUT", "/redfish/v1/Systems/fake-0"),
    ("DELETE", "/redfish/v1/SessionService/Sessions/nope"), ("GET", "/redfish/v1/Systems/%00"),
])
HEADER_VALUE = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=100).map(
    str.strip)
HEADERS = st.dictionaries(
    st.sampled_from(["OData-Version", "If-Match", "If-None-Match", "Accept", "X-Auth-Token",
                     "Authorization", "Content-Encoding", "Accept-Encoding", "Range", "X-Foo"]),
    HEADER_VALUE, max_size=3)


def test_any_body_and_header_gets_a_redfish_answer_never_a_500(bmc_server, config):
    bmc = bmc_server("--fake-nodes", "1", *config(account_lockout_threshold=0,
                                                  source_lockout_threshold=0))
    session = requests.Session()
    cert = str(bmc.state_dir / "redfish-cert.pem")   # per call: REQUESTS_CA_BUNDLE would win
    seen: dict[int, int] = {}

    @settings(max_examples=600, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(target=TARGETS, body=BODIES, content_type=CONTENT_TYPES, headers=HEADERS,
           basic=st.booleans())
    def attempt(target, body, content_type, headers, basic):
        method, path = target
        sent = {**headers, **({"Content-Type": content_type} if content_type else {})}
        if basic:
            sent.pop("Authorization", None)
        response = session.request(method, f"{bmc.redfish_url}{path}", data=body.encode(),
                                   headers=sent, auth=ADMIN if basic else None, verify=cert,
                                   timeout=10)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1
        assert response.status_code < 500 or response.status_code in (501, 503), response.text
        if response.status_code >= 400:
            error = response.json()["error"]
            assert error["@Message.ExtendedInfo"][0]["MessageId"].startswith("Base.1.22.")

    attempt()
    assert {400, 401, 415} <= set(seen), seen          # the properties reached each refusal
    assert bmc.proc.poll() is None
    bmc.stop()
    assert "Traceback" not in bmc.log, bmc.log[-3000:]
