"""Hostile clients against the BMC: QuintupleO before and after its hardening (issue 20),
beside what people use instead — pyghmi's BMC (the engine of VirtualBMC) and sushy-tools'
emulator — in one run.

    python bench/hostile.py [--seconds 10] [--before REF]

- online password guesses one client gets answered per second, ipmitool's way (Open Session
  and RAKP 1 with a wrong password: the RAKP 2 that comes back tells whether the guess was
  right) and Redfish's (Basic-auth GETs on one keep-alive connection); then whether the right
  password still works from another address;
- log lines written for 10,000 refused session setups;
- ipmitool logins during a 50,000 packets/s flood, and after one client opened 40 sessions.

"Before" is QuintupleO at REF (default: the last commit before the hardening), run from a git
worktree of this repository; sushy-tools is installed into ~/.cache/quintupleo/bench.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests
from common import FAKEBMC, PY, print_table, stop, venv_with, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from harness.rmcp import Console, LoginFailed, open_session_request, rakp1
from quintupleo.bmc.ipmi import wire

REPO = Path(__file__).resolve().parent.parent
BEFORE = "4f4a6e6"          # the last commit before the hardening
SUSHY_TOOLS = "sushy-tools==2.2.0"
FLOOD_RATE = 50_000


class Server:
    """One BMC process under test: ours (from a source tree), pyghmi's, or sushy-emulator."""

    def __init__(self, proc: subprocess.Popen, ipmi: int | None, redfish: str | None,
                 log: Path | None = None, cert: str | bool = False) -> None:
        self.proc, self.ipmi, self.redfish, self.log, self.cert = proc, ipmi, redfish, log, cert

    def lines(self) -> int:
        return len(self.log.read_text(errors="replace").splitlines()) if self.log else 0


def ours(tree: Path, tmp: Path, tag: str, port: int) -> Server:
    log = tmp / f"{tag}.log"
    proc = subprocess.Popen([PY, "-m", "quintupleo", "bmc", "serve", "--fake-nodes", "1",
                             "--state-dir", str(tmp / tag), "--ipmi-port-base", str(port),
                             "--redfish-port", str(port)], cwd=tree, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(tree)})
    wait_ready(proc, log, "ready:", 120)
    return Server(proc, port, f"https://127.0.0.1:{port}", log,
                  str(tmp / tag / "redfish-cert.pem"))


def pyghmi_bmc(port: int) -> Server:
    proc = subprocess.Popen([PY, "-c", FAKEBMC, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(1)
    return Server(proc, port, None)


def sushy(tmp: Path, port: int) -> Server:
    python = venv_with("sushy-tools-venv", SUSHY_TOOLS, "openstacksdk")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "bcrypt"], check=True)
    digest = subprocess.run([str(python), "-c", "import bcrypt; print(bcrypt.hashpw(b'password',"
                             " bcrypt.gensalt(rounds=4)).decode())"], capture_output=True,
                            text=True, check=True).stdout.strip()
    (tmp / "htpasswd").write_text(f"admin:{digest}\n")
    config = tmp / "sushy.conf"
    config.write_text(f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = "
                      f"{port}\nSUSHY_EMULATOR_AUTH_FILE = '{tmp / 'htpasswd'}'\n"
                      "SUSHY_EMULATOR_FAKE_DRIVER = True\n")
    log = tmp / "sushy.log"
    proc = subprocess.Popen([str(python.parent / "sushy-emulator"), "--config", str(config)],
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if requests.get(f"{url}/redfish/v1/", timeout=2).status_code in (200, 401):
                return Server(proc, None, url)
        except requests.ConnectionError:
            time.sleep(0.2)
    raise SystemExit(f"sushy-emulator did not start:\n{log.read_text()[-2000:]}")


# ---- measurements --------------------------------------------------------------------------
def ipmi_guesses(port: int, seconds: float) -> float:
    """RAKP 2s handed out per second to one client guessing (each one tests a password)."""
    console = Console(port, source="127.0.5.1", timeout=1)
    answered, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        opened = console.setup(wire.PAYLOAD_OPEN_SESSION_REQUEST, open_session_request(3))
        if not opened or opened[1]:
            continue
        bmc_id = struct.unpack_from("<I", opened, 8)[0]
        rakp2 = console.setup(0x12, rakp1(bmc_id, os.urandom(16), b"admin"))
        answered += bool(rakp2 and rakp2[1] == 0)
    console.close()
    return answered / seconds


class FromAddress(requests.adapters.HTTPAdapter):
    """Connections from one loopback address (the guesser's), so another can check after."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args: object, **kwargs: object) -> None:
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def redfish_guesses(server: Server, seconds: float) -> float:
    session = requests.Session()
    session.mount("http://", FromAddress("127.0.5.2"))
    session.mount("https://", FromAddress("127.0.5.2"))
    answered, end = 0, time.monotonic() + seconds
    while time.monotonic() < end:
        response = session.get(f"{server.redfish}/redfish/v1/Systems", verify=server.cert,
                               auth=("admin", f"guess-{answered}"), timeout=10)
        answered += response.status_code == 401 and "Retry-After" not in response.headers
    return answered / seconds


def ipmitool_ok(port: int, cipher: str = "17") -> bool:
    return subprocess.run(["ipmitool", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U",
                           "admin", "-P", "password", "-C", cipher, "-R", "1", "-N", "1",
                           "power", "status"], capture_output=True, timeout=30).returncode == 0


def redfish_ok(server: Server) -> bool:
    return requests.get(f"{server.redfish}/redfish/v1/Systems", auth=("admin", "password"),
                        verify=server.cert, timeout=10).status_code == 200


def refused_setups(server: Server, count: int = 10_000) -> int:
    """Log lines written for `count` null-user session setups (each refused)."""
    before = server.lines()
    consoles = [Console(server.ipmi, source=f"127.0.6.{n}", timeout=1) for n in range(1, 51)]
    for index in range(count):
        console = consoles[index % len(consoles)]
        opened = console.setup(wire.PAYLOAD_OPEN_SESSION_REQUEST, open_session_request())
        if opened and not opened[1]:
            console.setup(0x12, rakp1(struct.unpack_from("<I", opened, 8)[0], bytes(16), b""))
    for console in consoles:
        console.close()
    stop(server.proc)            # the summary of what was dropped is written at the stop
    return server.lines() - before


def logins_under_flood(port: int, logins: int = 10) -> tuple[int, float]:
    stop_flag, sent = threading.Event(), [0]

    def flood() -> None:
        flooder = Console(port, source="127.0.7.1")
        datagram = wire.build_rmcp_plus(wire.PAYLOAD_OPEN_SESSION_REQUEST, 0, 0,
                                        open_session_request())
        began = time.monotonic()
        while not stop_flag.is_set():
            for _ in range(100):
                flooder.send(datagram)
            sent[0] += 100
            time.sleep(max(0.0, sent[0] / FLOOD_RATE - (time.monotonic() - began)))

    thread = threading.Thread(target=flood)
    thread.start()
    started = time.monotonic()
    ok = sum(ipmitool_ok(port) for _ in range(logins))
    elapsed = time.monotonic() - started
    stop_flag.set()
    thread.join()
    return ok, elapsed


def login_after_hoarding(port: int) -> bool:
    hoarders = [Console(port, source="127.0.8.1", timeout=1) for _ in range(40)]
    for console in hoarders:
        with contextlib.suppress(LoginFailed, TimeoutError):   # refused or lost: measured
            console.login(suite_id=17)
    ok = ipmitool_ok(port)
    for console in hoarders:
        console.close()
    return ok


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--before", default=BEFORE)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qo-bench-hostile-") as tmp_name:
        tmp = Path(tmp_name)
        before_tree = tmp / "before"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(before_tree),
                        args.before], check=True, capture_output=True)
        try:
            measure(tmp, before_tree, args.seconds)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(before_tree)], capture_output=True)


def measure(tmp: Path, before_tree: Path, seconds: float) -> None:
    rows = []
    # guessing, then the right password from elsewhere
    found: dict[str, tuple[float, float, bool, bool]] = {}
    for tag, start in (("before", lambda: ours(before_tree, tmp, "g-before", 18100)),
                       ("after", lambda: ours(REPO, tmp, "g-after", 18110))):
        server = start()
        ipmi = ipmi_guesses(server.ipmi, seconds)
        ipmi_right = ipmitool_ok(server.ipmi, "3")
        web = redfish_guesses(server, seconds)
        found[tag] = (ipmi, web, ipmi_right, redfish_ok(server))
        stop(server.proc)
    pyghmi = pyghmi_bmc(18120)
    pyghmi_rate, pyghmi_right = ipmi_guesses(18120, seconds), ipmitool_ok(18120, "3")
    stop(pyghmi.proc)
    emulator = sushy(tmp, 18130)
    sushy_rate, sushy_right = redfish_guesses(emulator, seconds), redfish_ok(emulator)
    stop(emulator.proc)
    before, after = found["before"], found["after"]
    rows.append(("IPMI: RAKP 2s answered to one guesser", f"{before[0]:.0f}/s",
                 f"{after[0]:.2f}/s", f"{pyghmi_rate:.0f}/s",
                 f"{before[0] / max(after[0], 1e-9):.0f}x fewer"))
    rows.append(("IPMI: right password from another address, after", yes(before[2]),
                 yes(after[2]) + " (name locked 60 s)", yes(pyghmi_right), ""))
    rows.append(("Redfish: wrong Basic-auth answers to one guesser", f"{before[1]:.0f}/s",
                 f"{after[1]:.2f}/s", f"{sushy_rate:.0f}/s (sushy)",
                 f"{before[1] / max(after[1], 1e-9):.0f}x fewer"))
    rows.append(("Redfish: right password from another address, after", yes(before[3]),
                 yes(after[3]) + " (name locked 60 s)", yes(sushy_right) + " (sushy)", ""))
    # floods
    for tag, tree, port in (("before", before_tree, 18140), ("after", REPO, 18150)):
        server = ours(tree, tmp, f"f-{tag}", port)
        ok, elapsed = logins_under_flood(port)
        hoarded = login_after_hoarding(port)
        found[f"flood-{tag}"] = (ok, elapsed, hoarded, 0)
        stop(server.proc)
        server = ours(tree, tmp, f"l-{tag}", port + 5)
        found[f"log-{tag}"] = (refused_setups(server), 0, False, False)
    rows.append(("ipmitool logins during a 50k packets/s flood", _of(found["flood-before"]),
                 _of(found["flood-after"]), "", ""))
    rows.append(("a login after one client opened 40 sessions",
                 yes(found["flood-before"][2]), yes(found["flood-after"][2]), "", ""))
    rows.append(("log lines for 10,000 refused setups", f"{found['log-before'][0]:.0f}",
                 f"{found['log-after'][0]:.0f}", "",
                 f"{found['log-before'][0] / max(found['log-after'][0], 1):.0f}x fewer"))
    print_table(f"hostile clients ({seconds:.0f} s each; 2 cores shared by clients and BMCs)",
                "pyghmi BMC / sushy-tools", rows,
                ("figure", "before", "after", "pyghmi BMC / sushy-tools", "after vs before"))


def yes(value: bool) -> str:
    return "yes" if value else "no"


def _of(found: tuple) -> str:
    return f"{found[0]}/10 in {found[1]:.1f} s"


if __name__ == "__main__":
    main()
