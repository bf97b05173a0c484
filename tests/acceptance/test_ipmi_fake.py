"""The IPMI front end against real clients (ipmitool, pyghmi) on the fake backend."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
import time

import pytest
from pyghmi.exceptions import IpmiException
from pyghmi.ipmi import command as pyghmi_command

SUITES = [17, 3]


def power(bmc, node=0, **kw) -> str:
    return bmc.ipmitool("power", "status", node=node, **kw).stdout.strip()


def bootflags(bmc, node=0) -> str:
    return bmc.ipmitool("chassis", "bootparam", "get", "5", node=node).stdout


@pytest.mark.parametrize("cipher", SUITES)
def test_power_commands_with_each_cipher_suite(bmc_server, cipher):
    bmc = bmc_server("--fake-nodes", "2")
    assert power(bmc, cipher=cipher) == "Chassis Power is off"
    bmc.ipmitool("power", "on", cipher=cipher)
    assert power(bmc, cipher=cipher) == "Chassis Power is on"
    assert power(bmc, node=1, cipher=cipher) == "Chassis Power is off"   # nodes are separate
    assert "System Power         : on" in bmc.ipmitool("chassis", "status", cipher=cipher).stdout
    for action in ("cycle", "reset", "soft"):
        bmc.ipmitool("power", action, cipher=cipher)
    assert power(bmc, cipher=cipher) == "Chassis Power is off"
    bmc.ipmitool("power", "on", cipher=cipher)
    bmc.ipmitool("power", "off", cipher=cipher)
    assert power(bmc, cipher=cipher) == "Chassis Power is off"
    log = bmc.log
    for action in ("on", "cycle", "reset", "soft_off", "off"):
        assert f"node fake-0: {action} requested" in log


def test_best_cipher_suite_is_17(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    result = subprocess.run(
        ["ipmitool", "-v", "-I", "lanplus", "-H", "127.0.0.1", "-p", str(bmc.port_base),
         "-U", "admin", "-P", "password", "power", "status"],
        capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "Using best available cipher suite 17" in result.stdout + result.stderr


def test_power_state_when_off_refuses_reset_cycle_and_diag(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    for action in ("reset", "cycle", "diag"):
        result = bmc.ipmitool("power", action, check=False)
        assert result.returncode != 0
        assert "not supported in present state" in result.stderr
    bmc.ipmitool("power", "on")
    bmc.ipmitool("power", "diag")
    assert "node fake-0: diag_interrupt requested" in bmc.log


def test_mc_info_guid_and_unknown_command(bmc_server, tmp_path):
    bmc = bmc_server("--fake-nodes", "2", "--inventory-output", str(tmp_path / "nodes.json"))
    info = bmc.ipmitool("mc", "info").stdout
    assert "IPMI Version              : 2.0" in info
    assert "Chassis Device" in info
    guid = bmc.ipmitool("mc", "guid").stdout
    nodes = json.loads((tmp_path / "nodes.json").read_text())["nodes"]
    assert f"System GUID   : {nodes[0]['extra']['system_uuid']}" in guid
    assert nodes[1]["extra"]["system_uuid"] in bmc.ipmitool("mc", "guid", node=1).stdout
    result = bmc.ipmitool("raw", "0x06", "0xff", check=False)
    assert "rsp=0xc1" in result.stderr
    # malformed: chassis control without its byte, an out-of-range control, boot options
    assert "rsp=0xc7" in bmc.ipmitool("raw", "0x00", "0x02", check=False).stderr
    assert "rsp=0xcc" in bmc.ipmitool("raw", "0x00", "0x02", "0x09", check=False).stderr
    assert "rsp=0xc7" in bmc.ipmitool("raw", "0x00", "0x08", "0x05", "0x80",
                                      check=False).stderr
    assert "rsp=0x80" in bmc.ipmitool("raw", "0x00", "0x09", "0x07", "0", "0",
                                      check=False).stderr


def test_bootdev_as_ipmitool_sends_it(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    assert "No override" in bootflags(bmc)
    bmc.ipmitool("chassis", "bootdev", "pxe")
    flags = bootflags(bmc)
    assert "Force PXE" in flags and "only next boot" in flags and "legacy" in flags
    bmc.ipmitool("chassis", "bootdev", "disk", "options=persistent,efiboot")
    flags = bootflags(bmc)
    assert "Force Boot from default Hard-Drive" in flags
    assert "all future boots" in flags and "BIOS EFI boot" in flags
    bmc.ipmitool("chassis", "bootdev", "cdrom")
    assert "Force Boot from CD/DVD" in bootflags(bmc)
    bmc.ipmitool("chassis", "bootdev", "bios")
    assert "Force Boot into BIOS Setup" in bootflags(bmc)


@pytest.mark.parametrize(("first", "device", "text", "persistent"), [
    ("0xa0", "0x04", "Force PXE", False),
    ("0xe0", "0x04", "Force PXE", True),
    ("0xa0", "0x08", "Force Boot from default Hard-Drive", False),
    ("0xe0", "0x08", "Force Boot from default Hard-Drive", True),
])
def test_bootdev_as_ironic_sends_it(bmc_server, first, device, text, persistent):
    bmc = bmc_server("--fake-nodes", "1")
    bmc.ipmitool("raw", "0x00", "0x08", "0x03", "0x08")           # boot flag timeout off
    assert bmc.ipmitool("raw", "0x00", "0x09", "0x03", "0", "0").stdout.split() == \
        ["01", "03", "08"]
    bmc.ipmitool("raw", "0x00", "0x08", "0x05", first, device, "0", "0", "0")
    flags = bootflags(bmc)
    assert text in flags and "BIOS EFI boot" in flags
    assert ("all future boots" in flags) is persistent
    # The next boot the node performs consumes a one-time override, not a persistent one.
    bmc.ipmitool("power", "on")
    flags = bootflags(bmc)
    assert (text in flags) is persistent
    assert ("No override" in flags) is not persistent


def test_one_time_override_survives_until_a_boot(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    bmc.ipmitool("power", "on")
    bmc.ipmitool("chassis", "bootdev", "pxe")
    bmc.ipmitool("power", "soft")                 # not a boot
    assert "Force PXE" in bootflags(bmc)
    bmc.ipmitool("power", "on")                   # a boot: consumed
    assert "No override" in bootflags(bmc)
    bmc.ipmitool("chassis", "bootdev", "pxe")
    bmc.ipmitool("power", "reset")                # a reboot is a boot too
    assert "No override" in bootflags(bmc)


def test_boot_override_persists_across_restart(bmc_server, tmp_path):
    state = tmp_path / "persist"
    bmc = bmc_server("--fake-nodes", "2", state_dir=state)
    bmc.ipmitool("chassis", "bootdev", "pxe", "options=persistent,efiboot", node=1)
    bmc.ipmitool("chassis", "bootdev", "disk", node=0)
    assert bmc.stop() == 0
    again = bmc_server("--fake-nodes", "2", state_dir=state, port_base=bmc.port_base)
    flags = bootflags(again, node=1)
    assert "Force PXE" in flags and "all future boots" in flags and "EFI" in flags
    assert "Force Boot from default Hard-Drive" in bootflags(again, node=0)


def test_wrong_password_unknown_user_and_null_user_are_refused(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    errors = {}
    for kwargs in ({"password": "wrong"}, {"user": "nobody"}, {"user": ""}):
        for cipher in SUITES:
            result = bmc.ipmitool("power", "on", cipher=cipher, check=False, **kwargs)
            assert result.returncode != 0
            assert "Unable to establish IPMI v2 / RMCP+ session" in result.stderr
            errors[str(kwargs), cipher] = result.stderr
    # an unknown user name reads exactly as a wrong password does: names cannot be enumerated
    for cipher in SUITES:
        assert errors[str({"user": "nobody"}), cipher] == errors[str({"password": "wrong"}),
                                                                  cipher]
    time.sleep(5.5)     # ipmitool says nothing after a RAKP 2 it rejects: the setups time out
    log = bmc.log
    assert "requested" not in log                       # nothing ran
    assert "null user name" in log
    assert log.count("IPMI failed login from 127.0.0.1: user name 'nobody'") == 2
    assert log.count("IPMI failed login from 127.0.0.1: user name 'admin'") == 2
    assert "wrong" not in log                           # the password is never logged
    assert power(bmc) == "Chassis Power is off"


def test_cipher_suite_0_and_ipmi_15_are_refused(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    result = bmc.ipmitool("power", "on", cipher=0, check=False)
    assert result.returncode != 0 and "no matching cipher suite" in result.stderr
    v15 = subprocess.run(["ipmitool", "-I", "lan", "-H", "127.0.0.1", "-p", str(bmc.port_base),
                          "-U", "admin", "-P", "password", "power", "on"],
                         capture_output=True, text=True, timeout=30)
    assert v15.returncode != 0
    assert "requested" not in bmc.log
    assert power(bmc) == "Chassis Power is off"


def test_pyghmi_client(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    client = pyghmi_command.Command(bmc="127.0.0.1", port=bmc.port_base, userid="admin",
                                    password="password")
    try:
        assert client.get_power() == {"powerstate": "off"}
        assert client.set_power("on", wait=True) == {"powerstate": "on"}
        client.set_bootdev("network", persist=True, uefiboot=True)
        assert client.get_bootdev() == {"bootdev": "network", "persistent": True,
                                        "uefimode": True}
        client.set_bootdev("hd")
        assert client.get_bootdev()["bootdev"] == "hd"
        client.set_power("off", wait=True)
        assert client.get_power() == {"powerstate": "off"}
    finally:
        client.ipmi_session.logout()
    with pytest.raises(IpmiException):
        pyghmi_command.Command(bmc="127.0.0.1", port=bmc.port_base, userid="admin",
                               password="not-it").get_power()


def test_busy_node_answers_0xc0(bmc_server):
    bmc = bmc_server("--fake-nodes", "1", "--fake-delay", "5")
    results = [bmc.ipmitool("power", action, check=False)
               for action in ["on", "off"] * 5]
    assert [r.returncode for r in results[:8]] == [0] * 8     # queued: one at a time
    assert results[8].returncode != 0 and "Node busy" in results[8].stderr
    assert results[9].returncode == 0                          # a repeat of the last: coalesced
    assert power(bmc) == "Chassis Power is off"                # the last accepted intent


def test_per_node_ports_and_addresses_in_one_process(bmc_server, tmp_path):
    config = tmp_path / "bmc.yaml"
    config.write_text("""
backend: fake
fake_nodes: 3
nodes:
  fake-1: {ipmi_address: 127.0.0.2}
  fake-2: {ipmi_address: 127.0.0.3, username: operator, password: secret-2}
""")
    bmc = bmc_server("--config", str(config))
    bmc.ipmitool("power", "on", node=0)
    assert power(bmc, host="127.0.0.2", port=623) == "Chassis Power is off"
    bmc.ipmitool("power", "on", host="127.0.0.3", port=623, user="operator",
                 password="secret-2")
    assert bmc.ipmitool("power", "status", host="127.0.0.3", port=623, user="operator",
                        password="secret-2").stdout.strip() == "Chassis Power is on"
    refused = bmc.ipmitool("power", "status", host="127.0.0.3", port=623, check=False)
    assert refused.returncode != 0
    assert "secret-2" not in bmc.log


def test_inventory_out_is_ironic_bulk_enrollment(bmc_server, tmp_path):
    out = tmp_path / "nodes.json"
    bmc = bmc_server("--fake-nodes", "3", "--password", "s3cret", "--inventory-output", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    nodes = json.loads(out.read_text())["nodes"]
    assert [n["name"] for n in nodes] == ["fake-0", "fake-1", "fake-2"]
    for index, node in enumerate(nodes):
        assert node["driver"] == "ipmi"
        info = node["driver_info"]
        assert (info["ipmi_address"], info["ipmi_port"]) == ("127.0.0.1", bmc.port_base + index)
        assert (info["ipmi_username"], info["ipmi_password"]) == ("admin", "s3cret")
        assert node["properties"]["memory_mb"] > 0 and node["ports"][0]["address"]
        # and the credentials in the file really work
        assert power(bmc, node=index, password=info["ipmi_password"]) == "Chassis Power is off"
    assert "s3cret" not in bmc.log


def test_bad_settings_are_clear_errors(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text("backend: fake\nfake_node: 3\n")
    result = subprocess.run([sys.executable, "-m", "quintupleo", "bmc", "serve", "--config",
                             str(config), "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"error: {config}: fake_node: unknown setting" in result.stderr
    result = subprocess.run([sys.executable, "-m", "quintupleo", "bmc", "serve",
                             "--backend", "openstack", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "--prefix: the openstack backend needs a prefix or " \
        "servers" in result.stderr
    result = subprocess.run([sys.executable, "-m", "quintupleo", "bmc", "serve",
                             "--backend", "openstack", "--cloud", "no-such-cloud", "--prefix",
                             "x", "--state-dir", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "cloud no-such-cloud" in result.stderr
    assert "Traceback" not in result.stderr


def test_ports_in_use_are_clear_errors(bmc_server, tmp_path):
    bmc = bmc_server("--fake-nodes", "1")
    for extra, expected in ((["--redfish-port", str(bmc.port_base + 7)], "UDP 127.0.0.1:"),
                            (["--no-redfish", "--ipmi-port-base", str(bmc.port_base + 7),
                              "--redfish-port", str(bmc.port_base)], None),
                            (["--ipmi-port-base", str(bmc.port_base + 7),
                              "--redfish-port", str(bmc.port_base)], "cannot listen for Redfish")):
        args = [sys.executable, "-m", "quintupleo", "bmc", "serve", "--fake-nodes", "1",
                "--state-dir", str(tmp_path), "--redfish-port", str(bmc.port_base),
                "--ipmi-port-base", str(bmc.port_base), *extra]
        if expected is None:   # nothing in use: it starts (and is stopped here)
            proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                assert proc.wait(timeout=3) is None
            except subprocess.TimeoutExpired:
                proc.terminate()
                assert proc.wait(timeout=15) == 0
            continue
        result = subprocess.run(args, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1, result.stderr
        assert expected in result.stderr and "Traceback" not in result.stderr
    assert power(bmc) == "Chassis Power is off"     # the first one is untouched


def test_sensors_event_log_identify_and_bmc_information(bmc_server, tmp_path):
    """What scripts and Ironic's sensor collection read: the SDR and readings (ipmitool and
    FreeIPMI), which follow the node's power state; the SEL with an entry per power change
    (cleared by an operator, not a user); chassis identify; DCMI power; channel, user, session
    and LAN information."""
    bmc = bmc_server("--fake-nodes", "1")

    def run(*command: str) -> str:
        return bmc.ipmitool(*command).stdout

    def freeipmi(tool: str, *args: str) -> str:
        return subprocess.run([tool, "-h", f"127.0.0.1:{bmc.port_base}", "-u", "admin", "-p",
                               "password", "-D", "LAN_2_0", "-l", "ADMIN", *args],
                              capture_output=True, text=True, timeout=60, check=True).stdout

    off = run("sdr", "list")
    assert "System Power     | 0 Watts" in off and "Inlet Temp       | 21 degrees C" in off
    run("power", "on")
    on = run("sdr", "list")
    assert "System Power     | 25 Watts" in on and "Inlet Temp       | 24 degrees C" in on
    cache = ("--sdr-cache-directory", str(tmp_path))
    assert "S0/G0" in freeipmi("ipmi-sensors", *cache)
    assert "Instantaneous power reading:                    25 Watts" in run(
        "dcmi", "power", "reading")
    run("power", "off")
    assert "'S5/G2'" in freeipmi("ipmi-sensors", *cache)
    sel = run("sel", "list").splitlines()
    assert len(sel) == 2 and "S0/G0: working" in sel[0] and "S5/G2: soft-off" in sel[1]
    assert "S0/G0" in freeipmi("ipmi-sel", *cache)
    refused = bmc.ipmitool("-L", "USER", "sel", "clear", check=False)
    assert "Insufficient privilege" in refused.stdout + refused.stderr
    run("sel", "clear")
    cleared = bmc.ipmitool("sel", "list")
    assert "no entries" in cleared.stdout + cleared.stderr
    assert run("raw", "0x00", "0x01").split()[2] == "40"     # identify supported, off
    run("chassis", "identify", "force")
    assert run("raw", "0x00", "0x01").split()[2] == "60"     # on, indefinitely
    run("chassis", "identify", "1")
    assert run("raw", "0x00", "0x01").split()[2] == "50"     # on, timed
    time.sleep(1.5)
    assert run("raw", "0x00", "0x01").split()[2] == "40"     # off again by itself
    assert "Chassis Identify state              : off" in freeipmi("ipmi-chassis",
                                                                  "--get-chassis-status")
    channel = run("channel", "info")
    assert "802.3 LAN" in channel and "multi-session" in channel
    users = run("user", "list").splitlines()
    assert users[2].split()[:2] == ["2", "admin"] and "ADMINISTRATOR" in users[2]
    session = run("session", "info", "active")
    assert "IPMIv2/RMCP+" in session and "console ip                    : 127.0.0.1" in session
    lan = run("lan", "print")
    assert "IP Address              : 127.0.0.1" in lan and "3,17" in lan.replace(" ", "")
    assert "Traceback" not in bmc.log
