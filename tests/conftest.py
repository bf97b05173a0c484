"""Shared fixtures: the local cloud (brought up once, idempotent if it runs) and the virtual
BMC as a real process driven by the real ipmitool."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import openstack
import pytest
from ruamel.yaml import YAML

from harness.bmc_process import BmcProcess, ipmitool  # noqa: F401 - ipmitool: for tests' imports
from quintupleo.devcloud.layout import default_home
from quintupleo.devcloud.manager import Devcloud


@pytest.fixture(scope="session")
def devcloud_home():
    return default_home()


@pytest.fixture
def devcloud(devcloud_home) -> Devcloud:
    """The local cloud, running: `up` is a no-op beyond a readiness check when it already runs."""
    cloud = Devcloud(devcloud_home)
    cloud.up()
    return cloud


# ---- why the cloud said no: its services' own words, on a failed devcloud test ------------
_CLOUD_LOGS = ("nova-scheduler", "nova-conductor", "placement", "nova-compute")
_CLOUD_START = pytest.StashKey[str]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    item.stash[_CLOUD_START] = time.strftime("%Y-%m-%d %H:%M:%S")
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    cloud, start = item.funcargs.get("devcloud"), item.stash.get(_CLOUD_START, None)
    if report.when != "call" or not report.failed or cloud is None or start is None:
        return
    # A "No valid host" or a timeout in CI is only explained by the scheduler's, conductor's
    # and Placement's own lines of that minute.
    lines = []
    for service in _CLOUD_LOGS:
        try:
            text = cloud.layout.log(service).read_text(errors="replace")
        except OSError:
            continue
        lines += [(line[:23], f"{service}: {_REQUEST.sub('', line)[:240]}")
                  for line in text.splitlines()
                  if _STAMP.match(line) and line[:19] >= start and _telling(line)]
    if lines:
        report.sections.append(("devcloud services during the test",
                                "\n".join(line for _, line in sorted(lines)[-20:])))


_STAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")     # oslo.log's lines; uWSGI's have none
_REQUEST = re.compile(r"\[(None )?req-[^\]]*\] ")


def _telling(line: str) -> bool:
    """A warning or error (not its traceback), the scheduler's INFO, a 5xx from Placement."""
    fields = line.split(" ", 5)
    if len(fields) < 6:
        return False
    level, logger, rest = fields[3], fields[4], fields[5]
    if "deprecat" in rest:
        return False
    if level in ("WARNING", "ERROR", "CRITICAL"):
        return rest.startswith("[")
    if logger == "placement.requestlog":
        return "status: 5" in rest
    return level == "INFO" and logger.startswith("nova.scheduler")


# ---- the local cloud's clients (shared by the integration and acceptance tiers) ----------
@pytest.fixture
def conn(devcloud):
    connection = openstack.connect(cloud="devcloud")
    yield connection
    connection.close()


@pytest.fixture
def real_host(devcloud):
    """The devcloud runs its real host (as root it does); skipped where it cannot."""
    from quintupleo.devcloud.layout import State
    if not State.load(devcloud.layout).vms:
        pytest.skip("the devcloud runs without its real host (zone qemu): not root?")
    return devcloud


@pytest.fixture
def admin_conn(conn):
    connection = openstack.connect(cloud="devcloud-admin")
    yield connection
    connection.close()


@pytest.fixture
def qo_env(tmp_path, devcloud):
    """Run `quintupleo env ...` with its own state dir; environments left over are deleted."""
    environ = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"))
    created: list[str] = []

    def run(*args: str, check: bool = True, background: bool = False):
        command = [sys.executable, "-m", "quintupleo", "env", *args]
        if args[0] == "create" and not args[-1].startswith("--"):
            created.append(args[-1])
        if background:
            return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
        result = subprocess.run(command, env=environ, capture_output=True, text=True,
                                timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"env {' '.join(args)}: {result.stdout}{result.stderr}")
        return result

    run.state = tmp_path / "state" / "quintupleo" / "environments"
    run.environ = environ
    yield run
    for name in {p.parent.name for p in run.state.glob("*/journal.sqlite")}:
        run("delete", name, check=False)


# ---- resources on the local cloud, deleted afterwards (the integration and hostile tiers) ---
@pytest.fixture
def name():
    """A unique name for this test's resources."""
    return f"qo-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def network(conn, name):
    """A network for our own DHCP: a subnet with DHCP off and no gateway."""
    net = conn.network.create_network(name=name)
    subnet = conn.network.create_subnet(network_id=net.id, name=name, ip_version=4,
                                        cidr="192.0.2.0/24", enable_dhcp=False, gateway_ip=None)
    yield net, subnet
    for port in conn.network.ports(network_id=net.id):
        conn.network.delete_port(port, ignore_missing=True)
    conn.network.delete_network(net, ignore_missing=True)


@pytest.fixture
def boot(conn, network, name):
    """Boot servers on pre-created ports; everything is deleted afterwards."""
    net, _ = network
    servers = []
    image = conn.image.find_image("quintupleo-tiny")
    flavor = conn.compute.find_flavor("qo.tiny")

    def _boot(suffix: str = "", wait: bool = True, image_id: str | None = None, **port_args):
        port = conn.network.create_port(network_id=net.id, name=f"{name}{suffix}",
                                         port_security_enabled=False, **port_args)
        server = conn.compute.create_server(name=f"{name}{suffix}", image_id=image_id or image.id,
                                            flavor_id=flavor.id, networks=[{"port": port.id}])
        servers.append(server)
        return conn.compute.wait_for_server(server, wait=60) if wait else server

    yield _boot
    for server in servers:
        conn.compute.delete_server(server, ignore_missing=True)
    for server in servers:
        conn.compute.wait_for_delete(server, wait=60)


@pytest.fixture
def tagged():
    """What the devcloud holds tagged for an environment: tagged(conn, name)."""
    return _tagged


def _tagged(conn, name):
    tag = f"quintupleo:{name}"
    return {"servers": list(conn.compute.servers(tags=tag)),
            "ports": list(conn.network.ports(tags=tag)),
            "subnets": list(conn.network.subnets(tags=tag)),
            "networks": list(conn.network.networks(tags=tag))}


# ---- the virtual BMC as a real process ------------------------------------------------------
# 16000-17279, 20 ports a server, used again in turn: the fixed ports of other tests (labs
# from 17300, Ironic's from 15385) stay clear however many servers a run starts
_PORT_BASES = (16000 + n * 20 % 1280 for n in itertools.count())


@pytest.fixture
def bmc_server(tmp_path):
    """Factory: start `bmc serve` with extra args; every server is stopped afterwards."""
    servers: list[BmcProcess] = []

    def _start(*args: str, state_dir: Path | None = None, port_base: int | None = None,
               timeout: float = 60, env: dict[str, str] | None = None) -> BmcProcess:
        server = BmcProcess(list(args), state_dir or tmp_path / "bmc-state",
                            port_base or next(_PORT_BASES), env)
        servers.append(server)
        return server.start(timeout)

    yield _start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def redfish_schemas(tmp_path_factory) -> Path:
    """DMTF's CSDL schemas, unpacked for the Redfish Service Validator (it cannot download)."""
    import tarfile
    target = tmp_path_factory.mktemp("redfish")
    with tarfile.open(Path(__file__).parent / "data" / "redfish-csdl-2025.4.tar.xz") as archive:
        archive.extractall(target, filter="data")
    return target / "csdl"


@pytest.fixture
def redfish_validator(redfish_schemas, tmp_path):
    """Run the DMTF Redfish Service Validator: validator(url, auth) -> its counts."""
    def _run(url: str, auth: str = "Session") -> dict[str, int]:
        return run_redfish_validator(url, redfish_schemas, tmp_path, auth)
    return _run


def run_redfish_validator(url: str, schemas: Path, logdir: Path, auth: str = "Session",
                          user: str = "admin", password: str = "password") -> dict[str, int]:
    """The DMTF Redfish Service Validator against `url`; returns its PASS/WARN/FAIL counts."""
    import re
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rf_service_validator"), "--ip", url, "-u", user,
         "-p", password, "--authtype", auth, "--schema_directory", str(schemas),
         "--logdir", str(logdir)],
        capture_output=True, text=True, timeout=300, cwd=logdir)
    output = result.stdout + result.stderr
    match = re.search(r"\|\s*PASS\s*\|\s*WARN\s*\|\s*FAIL\s*\|\s*NOT TESTED\s*\|\s*\n"
                      r"[+\-]+\n\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*(\d+)", output)
    assert match, f"no summary in the validator's output:\n{output[-3000:]}"
    counts = dict(zip(("pass", "warn", "fail", "not_tested"), map(int, match.groups()),
                      strict=True))
    counts["output"] = output   # type: ignore[assignment]
    return counts


# ---- BMC settings files, and a BMC over lab nodes (QEMU, powered off) ---------------------
def write_config(path: Path, **settings: object) -> str:
    """A `bmc serve --config` file; returns its path as a flag value."""
    YAML(typ="safe").dump(settings, path)
    return str(path)


@pytest.fixture
def config(tmp_path):
    counter = iter(range(1000))

    def _config(**settings: object) -> tuple[str, str]:
        return "--config", write_config(tmp_path / f"bmc-{next(counter)}.yaml", **settings)
    return _config


@pytest.fixture
def console_bmc(tmp_path, bmc_server, config):
    """Factory: a BMC over QEMU lab nodes that are off (so they have a serial console and no
    VM runs), with the settings given; the lab's own BMC is replaced by it."""
    if os.geteuid() != 0 or shutil.which("qemu-system-x86_64") is None:
        pytest.skip("a lab node needs root and QEMU")
    home = tmp_path / "home"
    env = dict(os.environ, QUINTUPLEO_HOME=str(home))
    name = f"h{uuid.uuid4().hex[:6]}"

    def lab(*args: str) -> None:
        subprocess.run([sys.executable, "-m", "quintupleo", "lab", *args, "--name", name],
                       env=env, capture_output=True, text=True, timeout=120, check=True)

    made: list[str] = []

    def _start(nodes: int = 1, **settings: object):
        """`nodes` QEMU nodes, all off; the lab's own BMC stopped, ours started."""
        lab("up", "--nodes", str(nodes), "--cidr", "10.253.0.0/24", "--ipmi-port-base",
            "17390", "--redfish-port", "17389")
        made.append(name)
        os.kill(int((home / "labs" / name / "bmc.pid").read_text()), 15)
        return bmc_server("--backend", "qemu", "--lab", name, *config(**settings), env=env)

    yield _start
    if made:
        lab("down")
