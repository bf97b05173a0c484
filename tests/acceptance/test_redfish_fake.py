"""The Redfish front end against real clients (sushy, requests, the DMTF validator), fake nodes."""

from __future__ import annotations

import http.server
import json
import stat
import threading
import time

import pytest
import requests
import sushy
from sushy import auth as sushy_auth


def cert(bmc) -> str:
    return str(bmc.state_dir / "redfish-cert.pem")


@pytest.fixture
def client(bmc_server):
    """sushy clients, closed (their sessions deleted) while the BMC still runs."""
    clients: list[sushy.Sushy] = []

    def _client(bmc, auth=None) -> sushy.Sushy:
        # verify against the self-signed certificate the BMC made: it must be valid for 127.0.0.1
        credentials = {} if auth else {"username": "admin", "password": "password"}
        clients.append(sushy.Sushy(f"{bmc.redfish_url}/redfish/v1", verify=cert(bmc),
                                   auth=auth, **credentials))
        return clients[-1]

    yield _client
    for each in clients:
        each.__del__()   # what sushy does on garbage collection: log out of the session


def get(bmc, path, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", ("admin", "password"))
    return requests.get(f"{bmc.redfish_url}{path}", verify=cert(bmc), timeout=10, **kwargs)


def error_id(response: requests.Response) -> str:
    body = response.json()
    assert "Traceback" not in response.text
    return body["error"]["@Message.ExtendedInfo"][0]["MessageId"]


def wait_power(system, state: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while True:
        system.refresh()
        if system.power_state == state:
            return
        assert time.monotonic() < deadline, f"power state {system.power_state}, not {state}"
        time.sleep(0.05)


@pytest.mark.parametrize("auth", ["Session", "Basic"])
def test_dmtf_validator_finds_no_failure(bmc_server, redfish_validator, auth):
    bmc = bmc_server("--fake-nodes", "2")
    counts = redfish_validator(bmc.redfish_url, auth)
    assert counts["fail"] == 0, counts["output"][-4000:]
    assert counts["pass"] > 200     # it really walked the systems, managers, chassis, sessions


def test_sushy_power_and_boot_override(bmc_server, client):
    bmc = bmc_server("--fake-nodes", "2")
    root = client(bmc)
    systems = root.get_system_collection().get_members()
    assert [s.identity for s in systems] == ["fake-0", "fake-1"]
    system = root.get_system("/redfish/v1/Systems/fake-0")
    assert system.power_state == sushy.PowerState.OFF
    assert sushy.ResetType.ON in system.get_allowed_reset_system_values()
    system.reset_system(sushy.ResetType.ON)
    wait_power(system, sushy.PowerState.ON)
    for target, enabled, mode in [
        (sushy.BOOT_SOURCE_TARGET_PXE, sushy.BOOT_SOURCE_ENABLED_ONCE, sushy.BOOT_SOURCE_MODE_UEFI),
        (sushy.BOOT_SOURCE_TARGET_HDD, sushy.BOOT_SOURCE_ENABLED_CONTINUOUS,
         sushy.BOOT_SOURCE_MODE_BIOS),
        (sushy.BOOT_SOURCE_TARGET_CD, sushy.BOOT_SOURCE_ENABLED_ONCE, sushy.BOOT_SOURCE_MODE_BIOS),
    ]:
        system.set_system_boot_options(target, enabled=enabled, mode=mode)
        system.refresh()
        assert (system.boot.target, system.boot.enabled, system.boot.mode) == \
            (target, enabled, mode)
    system.reset_system(sushy.ResetType.FORCE_OFF)
    wait_power(system, sushy.PowerState.OFF)
    system.reset_system(sushy.ResetType.ON)           # a boot: the one-time CD override is used
    system.refresh()
    assert system.boot.enabled == sushy.BOOT_SOURCE_ENABLED_DISABLED
    assert "node fake-0: on requested by Redfish" in bmc.log


def test_sessions_and_basic_as_ironic_uses_them(bmc_server, client):
    bmc = bmc_server("--fake-nodes", "1")
    # Ironic's default: a session first (SessionOrBasicAuth), Basic if sessions fail.
    session_auth = sushy_auth.SessionOrBasicAuth(username="admin", password="password")
    root = client(bmc, auth=session_auth)
    assert root.get_system("/redfish/v1/Systems/fake-0").power_state == sushy.PowerState.OFF
    assert session_auth.get_session_key()                  # it did log in with a session
    basic = client(bmc, auth=sushy_auth.BasicAuth(username="admin", password="password"))
    assert basic.get_system("/redfish/v1/Systems/fake-0").identity == "fake-0"
    # the session API by hand: create, use, list, delete, and the token is dead
    login = requests.post(f"{bmc.redfish_url}/redfish/v1/SessionService/Sessions",
                          json={"UserName": "admin", "Password": "password"},
                          verify=cert(bmc), timeout=10)
    assert login.status_code == 201
    token, location = login.headers["X-Auth-Token"], login.headers["Location"]
    headers = {"X-Auth-Token": token}
    assert get(bmc, "/redfish/v1/Systems", auth=None, headers=headers).status_code == 200
    sessions = get(bmc, "/redfish/v1/SessionService/Sessions", auth=None, headers=headers)
    assert {"@odata.id": location} in sessions.json()["Members"]
    gone = requests.delete(f"{bmc.redfish_url}{location}", headers=headers, verify=cert(bmc),
                           timeout=10)
    assert gone.status_code == 204
    assert get(bmc, "/redfish/v1/Systems", auth=None, headers=headers).status_code == 401
    wrong = requests.post(f"{bmc.redfish_url}/redfish/v1/SessionService/Sessions",
                          json={"UserName": "admin", "Password": "nope"}, verify=cert(bmc),
                          timeout=10)
    assert wrong.status_code == 401 and "nope" not in bmc.log and "password" not in bmc.log


def test_boot_device_is_shared_between_ipmi_and_redfish(bmc_server, client):
    bmc = bmc_server("--fake-nodes", "1")
    bmc.ipmitool("chassis", "bootdev", "pxe", "options=persistent,efiboot")
    boot = get(bmc, "/redfish/v1/Systems/fake-0").json()["Boot"]
    assert (boot["BootSourceOverrideTarget"], boot["BootSourceOverrideEnabled"],
            boot["BootSourceOverrideMode"]) == ("Pxe", "Continuous", "UEFI")
    system = client(bmc).get_system("/redfish/v1/Systems/fake-0")
    system.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_HDD,
                                   enabled=sushy.BOOT_SOURCE_ENABLED_ONCE,
                                   mode=sushy.BOOT_SOURCE_MODE_BIOS)
    flags = bmc.ipmitool("chassis", "bootparam", "get", "5").stdout
    assert "Force Boot from default Hard-Drive" in flags and "only next boot" in flags
    assert "legacy" in flags
    bmc.ipmitool("power", "on")
    assert get(bmc, "/redfish/v1/Systems/fake-0").json()["PowerState"] == "On"


def test_protocol_errors_are_redfish_error_bodies(bmc_server):
    bmc = bmc_server("--fake-nodes", "1")
    url = bmc.redfish_url
    for public in ("/redfish", "/redfish/v1/", "/redfish/v1/odata", "/redfish/v1/$metadata"):
        response = get(bmc, public, auth=None)
        assert response.status_code == 200, public
        assert response.headers["OData-Version"] == "4.0"
    assert "ServiceRoot.v1_20_0" in get(bmc, "/redfish/v1/$metadata", auth=None).text
    unauth = get(bmc, "/redfish/v1/Systems", auth=None)
    assert unauth.status_code == 401 and "WWW-Authenticate" in unauth.headers
    assert error_id(unauth) == "Base.1.22.NoValidSession"
    assert get(bmc, "/redfish/v1/Systems", auth=("admin", "bad")).status_code == 401
    missing = get(bmc, "/redfish/v1/Systems/nope")
    assert missing.status_code == 404 and error_id(missing) == "Base.1.22.ResourceNotFound"
    wrong_method = requests.delete(f"{url}/redfish/v1/Systems/fake-0", verify=cert(bmc),
                                   auth=("admin", "password"), timeout=10)
    assert wrong_method.status_code == 405 and "PATCH" in wrong_method.headers["Allow"]

    def patch(body, **headers):
        return requests.patch(f"{url}/redfish/v1/Systems/fake-0", data=body, verify=cert(bmc),
                              auth=("admin", "password"), timeout=10,
                              headers={"Content-Type": "application/json", **headers})

    assert error_id(patch("{not json")) == "Base.1.22.MalformedJSON"
    assert error_id(patch(json.dumps({"Bogus": 1}))) == "Base.1.22.PropertyUnknown"
    assert error_id(patch(json.dumps({"PowerState": "On"}))) == "Base.1.22.PropertyNotWritable"
    bad_value = patch(json.dumps({"Boot": {"BootSourceOverrideTarget": "Floppy"}}))
    assert bad_value.status_code == 400
    assert error_id(bad_value) == "Base.1.22.PropertyValueNotInList"
    etag = get(bmc, "/redfish/v1/Systems/fake-0").headers["ETag"]
    stale = patch(json.dumps({"Boot": {"BootSourceOverrideTarget": "Pxe"}}),
                  **{"If-Match": 'W/"0000"'})
    assert stale.status_code == 412 and error_id(stale) == "Base.1.22.PreconditionFailed"
    fresh = patch(json.dumps({"Boot": {"BootSourceOverrideTarget": "Pxe"}}), **{"If-Match": etag})
    assert fresh.status_code == 200
    assert fresh.json()["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    assert fresh.headers["ETag"] != etag

    def reset(body):
        return requests.post(f"{url}/redfish/v1/Systems/fake-0/Actions/ComputerSystem.Reset",
                             json=body, verify=cert(bmc), auth=("admin", "password"), timeout=10)

    assert error_id(reset({})) == "Base.1.22.ActionParameterMissing"
    assert error_id(reset({"ResetType": "Explode"})) == "Base.1.22.ActionParameterValueNotInList"
    assert reset({"ResetType": "ForceRestart"}).status_code == 409     # it is off
    assert reset({"ResetType": "On"}).status_code == 204
    assert reset({"ResetType": "Nmi"}).status_code == 204
    insert = requests.post(f"{url}/redfish/v1/Managers/fake-0/VirtualMedia/Cd/Actions/"
                           "VirtualMedia.InsertMedia", json={"Image": 42}, verify=cert(bmc),
                           auth=("admin", "password"), timeout=10)
    assert error_id(insert) == "Base.1.22.ActionParameterMissing"
    insert = requests.post(f"{url}/redfish/v1/Managers/fake-0/VirtualMedia/Cd/Actions/"
                           "VirtualMedia.InsertMedia", json={"Image": "ftp://x/y.iso"},
                           verify=cert(bmc), auth=("admin", "password"), timeout=10)
    assert insert.status_code == 400 and "http" in insert.json()["error"]["message"]
    huge = requests.post(f"{url}/redfish/v1/SessionService/Sessions", data="x" * 200_000,
                         headers={"Content-Type": "application/json"}, verify=cert(bmc),
                         timeout=10)
    assert huge.status_code == 413 and "Traceback" not in huge.text
    assert "Traceback" not in bmc.log


def test_dsp0266_headers_methods_and_versions(bmc_server):
    """The protocol rules DSP0266 sets beyond the bodies: Link rel=describedby, Allow and
    Cache-Control on GET and HEAD; 412 for an OData-Version other than 4.0; POST to a
    collection's Members is POST to the collection; an unknown method is 501."""
    bmc = bmc_server("--fake-nodes", "1")
    url, auth = bmc.redfish_url, ("admin", "password")
    for method in ("GET", "HEAD"):
        response = requests.request(method, f"{url}/redfish/v1/Systems/fake-0", auth=auth,
                                    verify=cert(bmc), timeout=10)
        assert response.status_code == 200
        assert response.headers["Link"] == (
            "<http://redfish.dmtf.org/schemas/v1/ComputerSystem.v1_27_0.json>; rel=describedby")
        assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "PATCH"}
        assert response.headers["Cache-Control"] == "no-cache"
    assert (method == "HEAD") and response.content == b""
    collection = get(bmc, "/redfish/v1/Systems")
    assert "ComputerSystemCollection.json" in collection.headers["Link"]
    assert collection.headers["Allow"] == "GET, HEAD"
    old = get(bmc, "/redfish/v1/Systems", headers={"OData-Version": "3.0"})
    assert old.status_code == 412 and error_id(old) == "Base.1.22.PreconditionFailed"
    assert get(bmc, "/redfish/v1/Systems", headers={"OData-Version": "4.0"}).status_code == 200
    login = requests.post(f"{url}/redfish/v1/SessionService/Sessions/Members",
                          json={"UserName": "admin", "Password": "password"},
                          verify=cert(bmc), timeout=10)
    assert login.status_code == 201 and login.headers["X-Auth-Token"]
    requests.delete(f"{url}{login.headers['Location']}", verify=cert(bmc), timeout=10,
                    headers={"X-Auth-Token": login.headers["X-Auth-Token"]}).raise_for_status()
    for method in ("TRACE", "PROPFIND"):   # HTTP methods Redfish does not use
        unknown = requests.request(method, f"{url}/redfish/v1/Systems", auth=auth,
                                   verify=cert(bmc), timeout=10)
        assert unknown.status_code == 501 and "Traceback" not in unknown.text
    assert requests.put(f"{url}/redfish/v1/Systems", auth=auth, verify=cert(bmc),
                        timeout=10).status_code == 405


def test_plain_http_and_redfish_inventory(bmc_server, client, tmp_path):
    out = tmp_path / "nodes.json"
    bmc = bmc_server("--fake-nodes", "2", "--no-tls", "--inventory-output", str(out),
                     "--inventory-driver", "redfish", "--password", "r3dfish")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    nodes = json.loads(out.read_text())["nodes"]
    for node in nodes:
        info = node["driver_info"]
        assert node["driver"] == "redfish"
        assert info["redfish_address"] == bmc.redfish_url
        assert info["redfish_verify_ca"] is False
        root = sushy.Sushy(info["redfish_address"] + "/redfish/v1",
                           username=info["redfish_username"], password=info["redfish_password"])
        try:
            assert root.get_system(info["redfish_system_id"]).name == node["name"]
        finally:
            root.__del__()
    assert "r3dfish" not in bmc.log


def test_tls_inventory_points_at_the_generated_ca(bmc_server, tmp_path):
    out = tmp_path / "nodes.json"
    bmc = bmc_server("--fake-nodes", "1", "--inventory-output", str(out),
                     "--inventory-driver", "redfish")
    info = json.loads(out.read_text())["nodes"][0]["driver_info"]
    assert info["redfish_address"].startswith("https://")
    assert info["redfish_verify_ca"] == cert(bmc)
    assert stat.S_IMODE((bmc.state_dir / "redfish-key.pem").stat().st_mode) == 0o600


def test_staged_boot_answers_powering_on_and_503_with_retry_after(bmc_server, client,
                                                                  tmp_path):
    """A boot that goes through steps (as a rescue does on Nova): Redfish says PoweringOn and
    refuses other resets with 503 + Retry-After until the node is up; IPMI says busy (0xC0);
    virtual media inserts, reads back and ejects."""
    config = tmp_path / "bmc.yaml"
    config.write_text("fake_staged: true\nfake_delay: 2\n")
    bmc = bmc_server("--fake-nodes", "1", "--config", str(config), "--refresh-interval", "1")
    system = client(bmc).get_system("/redfish/v1/Systems/fake-0")
    system.reset_system(sushy.ResetType.ON)
    assert get(bmc, "/redfish/v1/Systems/fake-0").json()["PowerState"] == "PoweringOn"
    assert "off" in bmc.ipmitool("power", "status").stdout
    refused = requests.post(f"{bmc.redfish_url}/redfish/v1/Systems/fake-0/Actions/"
                            "ComputerSystem.Reset", json={"ResetType": "ForceOff"},
                            auth=("admin", "password"), verify=cert(bmc), timeout=10)
    assert refused.status_code == 503 and int(refused.headers["Retry-After"]) > 0
    assert error_id(refused).endswith("ServiceTemporarilyUnavailable")
    busy = bmc.ipmitool("power", "off", check=False)
    assert busy.returncode != 0 and "busy" in busy.stderr.lower()
    wait_power(system, sushy.PowerState.ON)
    assert "on" in bmc.ipmitool("power", "status").stdout

    media = "/redfish/v1/Managers/fake-0/VirtualMedia/Cd"
    cd = client(bmc).get_manager("/redfish/v1/Managers/fake-0").virtual_media.get_member(media)
    cd.insert_media("http://192.0.2.7/images/boot.iso")
    cd.refresh()
    assert cd.inserted and cd.image == "http://192.0.2.7/images/boot.iso"
    assert cd.image_name == "boot.iso"
    cd.eject_media()
    cd.refresh()
    assert not cd.inserted and cd.image is None


def test_inventory_sensors_and_secure_boot_through_sushy(bmc_server, client):
    """sushy reads the inventory Ironic inspects; the chassis' power and thermal readings follow
    the node's power state; secure boot switches at the next boot, and a firmware without keys
    (DeleteAllKeys: setup mode) refuses it."""
    bmc = bmc_server("--fake-nodes", "1")
    root = client(bmc)
    system = root.get_system("/redfish/v1/Systems/fake-0")
    assert system.processors.summary == (2, sushy.ProcessorArchitecture.X86)
    assert system.memory_summary.size_gib == 2
    assert system.simple_storage.disks_sizes_bytes == [10 * 2**30]
    assert system.storage.drives_sizes_bytes == [10 * 2**30] * 5   # the disk, 4 RAID drives
    assert system.storage.volumes_sizes_bytes == []
    [nic] = system.ethernet_interfaces.get_members()
    assert nic.mac_address == "52:54:00:00:00:00"
    assert system.serial_number == "QO-00000000" and system.bios_version
    chassis = root.get_chassis("/redfish/v1/Chassis/fake-0")
    assert chassis.uuid == system.uuid and chassis.serial_number == system.serial_number

    def readings() -> tuple[float, float]:
        chassis.refresh()   # sushy reads no PowerControl: the draw is read as JSON
        [control] = get(bmc, "/redfish/v1/Chassis/fake-0/Power").json()["PowerControl"]
        [inlet] = chassis.thermal.temperatures
        assert chassis.power.power_supplies == [] and chassis.thermal.fans == []
        return control["PowerConsumedWatts"], inlet.reading_celsius

    off = readings()
    system.reset_system(sushy.ResetType.ON)
    wait_power(system, sushy.PowerState.ON)
    assert readings()[0] > off[0] and readings()[1] > off[1]
    assert nic.refresh() is None and nic.status.state == sushy.State.ENABLED

    secure = system.secure_boot
    assert (secure.enabled, secure.mode) == (False, sushy.SecureBootMode.USER)
    secure.set_enabled(True)
    secure.refresh()
    assert secure.enabled and secure.current_boot == sushy.SecureBootCurrentBoot.DISABLED
    system.reset_system(sushy.ResetType.FORCE_RESTART)
    time.sleep(0.5)
    secure.refresh()
    assert secure.current_boot == sushy.SecureBootCurrentBoot.ENABLED
    secure.reset_keys(sushy.SecureBootResetKeysType.DELETE_ALL_KEYS)
    secure.refresh()
    assert (secure.enabled, secure.mode) == (False, sushy.SecureBootMode.SETUP)
    with pytest.raises(sushy.exceptions.BadRequestError):
        secure.set_enabled(True)
    secure.reset_keys(sushy.SecureBootResetKeysType.RESET_ALL_KEYS_TO_DEFAULT)
    secure.set_enabled(True)


def test_accounts_and_roles_over_redfish_and_ipmi(bmc_server):
    """An Administrator creates an Operator and a ReadOnly account; each may do what its role
    allows, over Redfish and IPMI (ipmitool), and no more; a user changes its own password; a
    deleted account is gone from both; accounts outlive a restart; account 1 stays."""
    bmc = bmc_server("--fake-nodes", "1")
    url, admin = bmc.redfish_url, ("admin", "password")

    def call(method, path, auth=admin, **kw) -> requests.Response:
        return requests.request(method, f"{url}{path}", auth=auth, verify=cert(bmc),
                                timeout=10, **kw)

    accounts = "/redfish/v1/AccountService/Accounts"
    roles = call("GET", "/redfish/v1/AccountService/Roles").json()
    assert {m["@odata.id"].rsplit("/", 1)[1] for m in roles["Members"]} == {
        "Administrator", "Operator", "ReadOnly"}
    assert "ConfigureUsers" not in call(
        "GET", "/redfish/v1/AccountService/Roles/Operator").json()["AssignedPrivileges"]
    made = {}
    for name, role in (("ops", "Operator"), ("viewer", "ReadOnly")):
        response = call("POST", accounts, json={"UserName": name, "Password": f"{name}-pw",
                                                "RoleId": role})
        assert response.status_code == 201, response.text
        made[name] = response.headers["Location"]
    assert call("POST", accounts, json={"UserName": "ops", "Password": "x"}).status_code == 400
    assert call("POST", accounts, json={"UserName": "x", "Password": "y",
                                        "RoleId": "Root"}).status_code == 400
    ops, viewer = ("ops", "ops-pw"), ("viewer", "viewer-pw")
    reset = "/redfish/v1/Systems/fake-0/Actions/ComputerSystem.Reset"
    assert call("GET", "/redfish/v1/Systems/fake-0", auth=viewer).status_code == 200
    denied = call("POST", reset, auth=viewer, json={"ResetType": "On"})
    assert denied.status_code == 403 and error_id(denied) == "Base.1.22.InsufficientPrivilege"
    assert call("PATCH", "/redfish/v1/Systems/fake-0", auth=viewer,
                json={"Boot": {"BootSourceOverrideTarget": "Pxe"}}).status_code == 403
    assert call("POST", reset, auth=ops, json={"ResetType": "On"}).status_code == 204
    assert call("POST", accounts, auth=ops, json={"UserName": "z", "Password": "z"}
                ).status_code == 403
    assert call("PATCH", made["ops"], auth=ops, json={"RoleId": "Administrator"}
                ).status_code == 403
    assert call("PATCH", made["viewer"], auth=viewer, json={"Password": "new-pw"}
                ).status_code == 200
    viewer = ("viewer", "new-pw")
    assert call("GET", "/redfish/v1/Systems", auth=viewer).status_code == 200
    assert call("DELETE", f"{accounts}/1").status_code == 400    # the settings' account

    # IPMI: the same accounts, their role as the privilege limit
    assert "Chassis Power is on" in bmc.ipmitool("-L", "OPERATOR", "power", "status",
                                                 user="ops", password="ops-pw").stdout
    too_high = bmc.ipmitool("-L", "ADMINISTRATOR", "power", "status", user="ops",
                            password="ops-pw", check=False)
    assert too_high.returncode != 0
    bmc.ipmitool("-L", "OPERATOR", "power", "off", user="ops", password="ops-pw")
    refused = bmc.ipmitool("-L", "USER", "power", "on", user="viewer", password="new-pw",
                           check=False)
    assert "Insufficient privilege" in refused.stdout + refused.stderr
    users = bmc.ipmitool("user", "list").stdout
    assert "ops" in users and "OPERATOR" in users and "viewer" in users

    bmc.stop()
    bmc.start()
    assert call("GET", "/redfish/v1/Systems", auth=ops).status_code == 200
    assert call("DELETE", made["ops"]).status_code == 204
    assert call("GET", "/redfish/v1/Systems", auth=ops).status_code == 401
    gone = bmc.ipmitool("-L", "OPERATOR", "power", "status", user="ops", password="ops-pw",
                        check=False)
    assert gone.returncode != 0
    assert stat.S_IMODE((bmc.state_dir / "accounts.sqlite").stat().st_mode) == 0o600
    assert "ops-pw" not in bmc.log and "new-pw" not in bmc.log


def test_event_service_pushes_and_streams_power_and_boot_changes(bmc_server):
    """A subscriber (a plain HTTP server here) gets a Redfish Event for each power change and
    boot override change, pushed by the BMC; a Server-Sent Events client gets the same stream;
    a deleted subscription gets no more."""
    import http.server
    import threading

    received: list[dict] = []

    class Listener(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    listener = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Listener)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    bmc = bmc_server("--fake-nodes", "1")
    url, auth = bmc.redfish_url, ("admin", "password")
    service = get(bmc, "/redfish/v1/EventService").json()
    created = requests.post(f"{url}/redfish/v1/EventService/Subscriptions", auth=auth,
                            verify=cert(bmc), timeout=10,
                            json={"Destination": f"http://127.0.0.1:{listener.server_port}/",
                                  "Context": "test", "Protocol": "Redfish"})
    assert created.status_code == 201
    stream = requests.get(f"{url}{service['ServerSentEventUri']}", auth=auth, stream=True,
                          verify=cert(bmc), timeout=10)
    lines = stream.iter_lines()
    requests.post(f"{url}/redfish/v1/Systems/fake-0/Actions/ComputerSystem.Reset", auth=auth,
                  verify=cert(bmc), timeout=10, json={"ResetType": "On"}).raise_for_status()
    requests.patch(f"{url}/redfish/v1/Systems/fake-0", auth=auth, verify=cert(bmc), timeout=10,
                   json={"Boot": {"BootSourceOverrideTarget": "Pxe"}}).raise_for_status()
    streamed = []
    while len(streamed) < 2:
        line = next(lines)
        if line.startswith(b"data: "):
            streamed.append(json.loads(line[6:])["Events"][0])
    stream.close()
    assert [e["MessageId"] for e in streamed] == ["ResourceEvent.1.3.ResourcePoweredOn",
                                                  "ResourceEvent.1.3.ResourceChanged"]
    assert streamed[0]["OriginOfCondition"]["@odata.id"] == "/redfish/v1/Systems/fake-0"
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [r["Events"][0]["MessageId"] for r in received] == [e["MessageId"] for e in streamed]
    assert received[0]["Context"] == "test"
    requests.delete(f"{url}{created.headers['Location']}", auth=auth, verify=cert(bmc),
                    timeout=10).raise_for_status()
    requests.post(f"{url}/redfish/v1/Systems/fake-0/Actions/ComputerSystem.Reset", auth=auth,
                  verify=cert(bmc), timeout=10, json={"ResetType": "ForceOff"})
    time.sleep(1)
    assert len(received) == 2
    assert bmc.stop() == 0
    listener.shutdown()


def post(bmc, path, body, **kwargs) -> requests.Response:
    kwargs.setdefault("auth", ("admin", "password"))
    return requests.post(f"{bmc.redfish_url}{path}", json=body, verify=cert(bmc), timeout=10,
                         **kwargs)


def test_raid_volumes_through_sushy(bmc_server, client):
    """The RAID controller's volumes as sushy creates and deletes them (at once: 201 and 204),
    the drives they take, and what a controller refuses: an unknown level, too few or busy
    drives, a capacity beyond what the drives hold. The volumes outlive a BMC restart."""
    bmc = bmc_server("--fake-nodes", "1")
    storage = client(bmc).get_system("/redfish/v1/Systems/fake-0").storage.get_member(
        "/redfish/v1/Systems/fake-0/Storage/1")
    [controller] = storage.storage_controllers
    assert set(controller.raid_types) == {sushy.RAIDType.RAID0, sushy.RAIDType.RAID1,
                                          sushy.RAIDType.RAID5, sushy.RAIDType.RAID10}
    support = storage.volumes.operation_apply_time_support
    assert support.mapped_supported_values == [sushy.APPLY_TIME_IMMEDIATE]
    drives = [d.path for d in storage.drives]
    created = storage.volumes.create(
        {"RAIDType": "RAID5", "Name": "data", "Links": {"Drives": [
            {"@odata.id": d} for d in drives[1:]]}}, apply_time=sushy.APPLY_TIME_IMMEDIATE)
    assert (created.name, created.raid_type, created.capacity_bytes) == (
        "data", sushy.RAIDType.RAID5, 2 * 10 * 2**30)   # three drives, one of them parity
    path = "/redfish/v1/Systems/fake-0/Storage/1"
    assert get(bmc, f"{path}/Drives/1").json()["Links"]["Volumes"] == [
        {"@odata.id": created.path}]
    volumes = f"{path}/Volumes"
    for body, why in [({"RAIDType": "RAID6"}, "not supported"),
                      ({"RAIDType": "RAID1"}, "free"),             # one drive is left
                      ({"RAIDType": "RAID0", "Links": {"Drives": [{"@odata.id": drives[1]}]}},
                       "already belong"),
                      ({"RAIDType": "RAID0", "CapacityBytes": 11 * 2**30}, "at most"),
                      ({"RAIDType": "RAID0", "CapacityBytes": "big"}, "integer"),
                      ({"RAIDType": "RAID0", "@Redfish.OperationApplyTime": "OnReset"},
                       "Immediately"),
                      ({"RAIDType": "RAID0", "Links": {"Drives": [{"@odata.id": "/x"}]}},
                       "drives of this controller")]:
        refused = post(bmc, volumes, body)
        assert refused.status_code == 400 and why in refused.json()["error"]["message"], body
    bmc.stop()
    bmc.start()
    [kept] = get(bmc, volumes).json()["Members"]
    assert kept["@odata.id"] == created.path
    created = storage.volumes.get_member(created.path)
    assert created.delete(apply_time=sushy.APPLY_TIME_IMMEDIATE) is None   # 204: at once
    assert get(bmc, volumes).json()["Members"] == []


def test_firmware_updates_through_sushy(bmc_server, client, tmp_path):
    """SimpleUpdate through sushy and its task monitor: a BMC image runs when its task ends; a
    BIOS image's task runs until the next boot, which changes BiosVersion; an image the BMC
    cannot fetch ends its task in Exception, without the URI's password; an image that names
    no component, or a target that is no node, is refused at once (400)."""
    (tmp_path / "bios-2.0.bin").write_bytes(b"image" * 100)
    (tmp_path / "BMC_3.1.img").write_bytes(b"image" * 100)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: (
        http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    bmc = bmc_server("--fake-nodes", "2")
    root = client(bmc)
    updates = root.get_update_service()

    def finished(monitor):
        deadline = time.monotonic() + 10
        while monitor.check_is_processing and time.monotonic() < deadline:
            time.sleep(0.1)
        return monitor.get_task()

    try:
        task = finished(updates.simple_update(f"{url}/BMC_3.1.img",
                                              targets=["/redfish/v1/Managers/fake-1"]))
        assert (task.task_state, task.task_status) == (sushy.TASK_STATE_COMPLETED,
                                                       sushy.HEALTH_OK)
        assert root.get_manager("/redfish/v1/Managers/fake-1").firmware_version == "3.1"
        assert root.get_manager("/redfish/v1/Managers/fake-0").firmware_version != "3.1"

        monitor = updates.simple_update(f"{url}/bios-2.0.bin",
                                        targets=["/redfish/v1/Systems/fake-0"])
        time.sleep(1)
        assert monitor.check_is_processing   # written; it runs from the next boot
        system = root.get_system("/redfish/v1/Systems/fake-0")
        assert system.bios_version != "2.0"
        system.reset_system(sushy.ResetType.ON)
        assert finished(monitor).task_state == sushy.TASK_STATE_COMPLETED
        system.refresh()
        assert system.bios_version == "2.0"
        entry = updates.firmware_inventory.get_member(
            "/redfish/v1/UpdateService/FirmwareInventory/fake-0-BIOS")
        assert (entry.version, entry.updateable) == ("2.0", True)

        task = finished(updates.simple_update("http://user:s3cret@127.0.0.1:1/bmc-9.bin",
                                              targets=["/redfish/v1/Systems/fake-0"]))
        assert task.task_state == sushy.TASK_STATE_EXCEPTION
        assert "bmc-9.bin failed" in task.messages[-1].message
        assert "s3cret" not in json.dumps(get(bmc, task.path).json())
        assert "s3cret" not in bmc.log
    finally:
        server.shutdown()
        server.server_close()
    action = "/redfish/v1/UpdateService/Actions/UpdateService.SimpleUpdate"
    for body, why in [({"ImageURI": f"{url}/firmware.bin", "Targets": [
                           "/redfish/v1/Systems/fake-0"]}, "names no component"),
                      ({"ImageURI": f"{url}/bios-1.bin"}, "name one in Targets"),
                      ({"ImageURI": f"{url}/bios-1.bin", "Targets": ["/redfish/v1/Systems/x"]},
                       "no system"),
                      ({"Targets": ["/redfish/v1/Systems/fake-0"]}, "ImageURI is required")]:
        refused = post(bmc, action, body)
        assert refused.status_code == 400 and why in refused.json()["error"]["message"], body
