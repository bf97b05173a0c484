"""What people's scripts and Ironic's sensor collection read over IPMI besides power and boot:
chassis identify, the sensor data records and readings (`sdr`, `ipmi-sensors`), the event
log (`sel`), channel, user, session and LAN information (`channel info`, `user list`,
`session info`, `lan print`), DCMI power reading.

The sensors are those a virtual machine honestly has: its power draw and inlet temperature
follow the node's power state (platform.py's figures; no fault is ever made up), and the ACPI
power state. The SEL holds the node's power changes (platform.py).
"""

from __future__ import annotations

import ipaddress
import struct
import time
from dataclasses import dataclass

from quintupleo.bmc.accounts import IPMI_PRIVILEGE, MAX_ACCOUNTS, Account
from quintupleo.bmc.ipmi import session as rmcp
from quintupleo.bmc.ipmi.completion import Cc
from quintupleo.bmc.ipmi.context import Command, Completion, Context, need
from quintupleo.bmc.ipmi.handshake import Handshake
from quintupleo.bmc.platform import INLET_CELSIUS, POWER_WATTS
from quintupleo.model import PowerState

NETFN_CHASSIS, NETFN_SENSOR, NETFN_APP = 0x00, 0x04, 0x06
NETFN_STORAGE, NETFN_TRANSPORT, NETFN_GROUP = 0x0A, 0x0C, 0x2C
LAN_CHANNEL = 1
CURRENT_CHANNEL = 0x0E
DCMI = 0xDC
IANA_IPMI = bytes([0xF2, 0x1B, 0x00])   # 7154, the IPMI forum's enterprise number
NOT_PRESENT = 0xCB                      # "requested sensor, data, or record not present"
PARAMETER_NOT_SUPPORTED = 0x80
ACPI_WORKING, ACPI_SOFT_OFF = 0x00, 0x05   # System ACPI Power State offsets (S0/G0, G2/S5)
ACPI_STATE_SENSOR = 3


@dataclass(frozen=True)
class Sensor:
    number: int
    name: str
    kind: int          # IPMI sensor type (0x01 temperature, 0x0B other units, 0x22 ACPI)
    unit: int          # base unit (1 degrees C, 6 Watts; 0 for a discrete sensor)
    on: int            # the reading while the node is on
    off: int           # ... and while it is off

    def record(self, record_id: int) -> bytes:
        name = self.name.encode()[:16]
        if self.unit:   # a Full Sensor Record (type 01h): linear, M=1, B=0
            body = bytes([0x20, 0x00, self.number, 0x07, 0x01, 0x7F, 0x40, self.kind, 0x01,
                          0, 0, 0, 0, 0, 0, 0x00, self.unit, 0x00, 0x00, 1, 0, 0, 0, 0, 0,
                          0x00, self.off, 0xFF, 0x00, 0xFF, 0x00,   # nominal, max, min, range
                          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xC0 | len(name)]) + name
            kind = 0x01
        else:           # a Compact Sensor Record (type 02h): sensor-specific discrete states
            states = (1 << ACPI_WORKING) | (1 << ACPI_SOFT_OFF)
            body = bytes([0x20, 0x00, self.number, 0x07, 0x01, 0x7F, 0x40, self.kind, 0x6F,
                          *struct.pack("<HHH", states, states, states), 0, 0, 0, 0x01, 0x00,
                          0, 0, 0, 0, 0, 0, 0xC0 | len(name)]) + name
            kind = 0x02
        return struct.pack("<HBBB", record_id, 0x51, kind, len(body)) + body

    def reading(self, on: bool) -> bytes:
        value = self.on if on else self.off
        if self.unit:
            return bytes([value, 0xC0, 0x00])      # scanning, events enabled; no threshold
        return bytes([0x00, 0xC0, 1 << value, 0x80])


SENSORS = (
    Sensor(1, "System Power", 0x0B, 6, *POWER_WATTS),
    Sensor(2, "Inlet Temp", 0x01, 1, *INLET_CELSIUS),
    Sensor(ACPI_STATE_SENSOR, "ACPI State", 0x22, 0, on=ACPI_WORKING, off=ACPI_SOFT_OFF),
)
SDR = {index: sensor.record(index) for index, sensor in enumerate(SENSORS, 1)}
STARTED = int(time.time())


def _on(ctx: Context) -> bool:
    return ctx.controller.power is PowerState.ON


# ---- chassis identify ----------------------------------------------------------------------
def chassis_identify(ctx: Context, data: bytes) -> bytes:
    """The location indicator: on for `interval` seconds (default 15; 0 turns it off), or on
    until turned off (force)."""
    platform = ctx.controller.platform
    force = len(data) > 1 and data[1] & 0x01
    interval = data[0] if data else 15
    if force:
        platform.set_indicator("Lit")
    elif interval == 0:
        platform.set_indicator("Off")
    else:
        platform.set_indicator("Blinking", for_seconds=interval)
    return b""


def identify_state(ctx: Context) -> int:
    """Get Chassis Status' misc. byte: identify supported (bit 6) and its state (bits 5:4)."""
    state = {"Off": 0, "Blinking": 1, "Lit": 2}[ctx.controller.platform.indicator]
    return 0x40 | state << 4


# ---- sensors and their records -------------------------------------------------------------
def get_sdr_repository_info(ctx: Context, data: bytes) -> bytes:
    return (bytes([0x51]) + struct.pack("<HHII", len(SDR), 0, STARTED, 0)
            + bytes([0x22]))   # non-modal updates, reservations supported


def reserve(ctx: Context, data: bytes) -> bytes:
    return struct.pack("<H", 1)   # records never change while read: any reservation holds


def _read_record(records: dict[int, bytes], data: bytes) -> bytes:
    need(data, 6)
    record_id, offset, count = struct.unpack_from("<HBB", data, 2)
    ids = sorted(records)
    if not ids:
        raise Completion(NOT_PRESENT)
    record_id = ids[0] if record_id == 0 else ids[-1] if record_id == 0xFFFF else record_id
    if record_id not in records:
        raise Completion(NOT_PRESENT)
    at = ids.index(record_id)
    following = ids[at + 1] if at + 1 < len(ids) else 0xFFFF
    record = records[record_id]
    if offset > len(record):
        raise Completion(Cc.INVALID_DATA)
    return struct.pack("<H", following) + record[offset:offset + count]


def get_sdr(ctx: Context, data: bytes) -> bytes:
    return _read_record(SDR, data)


def get_sensor_reading(ctx: Context, data: bytes) -> bytes:
    need(data, 1)
    sensor = next((s for s in SENSORS if s.number == data[0]), None)
    if sensor is None:
        raise Completion(NOT_PRESENT)
    return sensor.reading(_on(ctx))


def get_power_reading(ctx: Context, data: bytes) -> bytes:
    """DCMI Get Power Reading (mode 1, system power statistics): the power sensor's figure."""
    need(data, 4)
    if data[0] != DCMI or data[1] != 0x01:
        raise Completion(Cc.INVALID_DATA)
    watts = SENSORS[0].on if _on(ctx) else SENSORS[0].off
    return (bytes([DCMI]) + struct.pack("<HHHHII", watts, watts, watts, watts,
                                        int(time.time()), 1000) + bytes([0x40]))


# ---- the event log (SEL) -------------------------------------------------------------------
def _sel(ctx: Context) -> dict[int, bytes]:
    return {e.id: struct.pack("<HBIBBBBBBBBB", e.id, 0x02, e.time, 0x20, 0x00, 0x04, 0x22,
                              ACPI_STATE_SENSOR, 0x6F,
                              ACPI_WORKING if e.what == "power on" else ACPI_SOFT_OFF,
                              0xFF, 0xFF)
            for e in ctx.controller.platform.events}


def get_sel_info(ctx: Context, data: bytes) -> bytes:
    events = ctx.controller.platform.events
    added = events[-1].time if events else 0
    return (bytes([0x51]) + struct.pack("<HHII", len(events), (512 - len(events)) * 16,
                                        added, ctx.controller.platform.events_cleared)
            + bytes([0x02]))   # reservations supported


def get_sel_entry(ctx: Context, data: bytes) -> bytes:
    return _read_record(_sel(ctx), data)


def clear_sel(ctx: Context, data: bytes) -> bytes:
    need(data, 6)
    if data[2:5] != b"CLR":
        raise Completion(Cc.INVALID_DATA)
    if data[5] == 0xAA:
        ctx.controller.platform.clear_events()
    return bytes([0x01])   # erasure completed


def get_sel_time(ctx: Context, data: bytes) -> bytes:
    return struct.pack("<I", int(time.time()))


# ---- channel, users, sessions, LAN ----------------------------------------------------------
def _channel(data: bytes) -> int:
    need(data, 1)
    channel = data[0] & 0x0F
    if channel not in (LAN_CHANNEL, CURRENT_CHANNEL):
        raise Completion(Cc.INVALID_DATA)
    return LAN_CHANNEL


def get_channel_access(ctx: Context, data: bytes) -> bytes:
    _channel(data)
    return bytes([0x22, rmcp.ADMINISTRATOR])   # alerting off, always available; admin limit


def get_channel_info(ctx: Context, data: bytes) -> bytes:
    channel = _channel(data)
    active = len(ctx.sessions or {})
    return bytes([channel, 0x04, 0x01, 0x80 | min(active, 0x3F)]) + IANA_IPMI + b"\0\0"


def _users(ctx: Context) -> dict[int, Account]:
    """IPMI user ID -> account: 1 is the (disabled) anonymous user, account N is user N + 1."""
    accounts = ctx.accounts.all() if ctx.accounts else []
    return {int(a.id) + 1: a for a in accounts}


def get_user_access(ctx: Context, data: bytes) -> bytes:
    _channel(data)
    need(data, 2)
    user = data[1] & 0x3F
    users = _users(ctx)
    if not 1 <= user <= MAX_ACCOUNTS + 1:
        raise Completion(Cc.INVALID_DATA)
    account = users.get(user)
    enabled = 0x40 if account and account.enabled else 0x80
    access = 0x10 | IPMI_PRIVILEGE[account.role] if account else 0x0F
    count = sum(a.enabled for a in users.values())
    return bytes([MAX_ACCOUNTS + 1, enabled | count, 1, access])


def get_user_name(ctx: Context, data: bytes) -> bytes:
    need(data, 1)
    user = data[0] & 0x3F
    if not 1 <= user <= MAX_ACCOUNTS + 1:
        raise Completion(Cc.INVALID_DATA)
    account = _users(ctx).get(user)
    return (account.username.encode()[:16] if account else b"").ljust(16, b"\0")


def get_session_info(ctx: Context, data: bytes) -> bytes:
    need(data, 1)
    sessions = sorted((ctx.sessions or {}).values(), key=lambda s: s.bmc_id)
    active = [s for s in sessions if s.active]
    index = data[0]
    if index == 0x00:
        session = ctx.session
    elif index == 0xFE:
        need(data, 5)
        wanted = struct.unpack_from("<I", data, 1)[0]
        session = next((s for s in active if s.bmc_id == wanted), None)
    elif index == 0xFF:
        need(data, 2)
        session = active[data[1] - 1] if 0 < data[1] <= len(active) else None
    else:
        session = active[index - 1] if index <= len(active) else None
    if session is None or session not in active:
        raise Completion(Cc.INVALID_DATA)
    user = next((uid for uid, a in _users(ctx).items()
                 if a.username.encode() == session.username), 2)
    head = bytes([active.index(session) + 1, Handshake.MAX_ACTIVE, len(active), user,
                  session.privilege, 0x10 | LAN_CHANNEL])
    if session is not ctx.session or ctx.address is None:
        return head
    host, port = ctx.address[0], ctx.address[1]
    try:
        ip = ipaddress.IPv4Address(host).packed
    except ValueError:
        ip = bytes(4)
    return head + ip + bytes(6) + struct.pack("<H", port)


def get_lan_configuration(ctx: Context, data: bytes) -> bytes:
    _channel(data)
    need(data, 4)
    if data[0] & 0x80:
        return bytes([0x11])   # the parameter revision only
    try:
        ip = ipaddress.IPv4Address(ctx.local_address).packed
    except ValueError:
        ip = bytes(4)
    suites = (3, 17)
    values = {
        0: b"\0", 1: b"\0", 2: bytes(5), 3: ip, 4: b"\x01", 5: bytes(6), 6: bytes(4),
        12: bytes(4), 13: bytes(6), 20: bytes(2),
        22: bytes([len(suites)]), 23: bytes([0, *suites]),
        24: bytes([0]) + bytes([rmcp.ADMINISTRATOR << 4 | rmcp.ADMINISTRATOR]) * 8,
    }
    value = values.get(data[1])
    if value is None:
        raise Completion(PARAMETER_NOT_SUPPORTED)
    return bytes([0x11]) + value


COMMANDS: dict[tuple[int, int], Command] = {
    (NETFN_CHASSIS, 0x04): Command(chassis_identify, rmcp.OPERATOR),
    (NETFN_APP, 0x3D): Command(get_session_info, rmcp.USER),
    (NETFN_APP, 0x41): Command(get_channel_access, rmcp.USER),
    (NETFN_APP, 0x42): Command(get_channel_info, rmcp.USER),
    (NETFN_APP, 0x44): Command(get_user_access, rmcp.OPERATOR),
    (NETFN_APP, 0x46): Command(get_user_name, rmcp.OPERATOR),
    (NETFN_SENSOR, 0x2D): Command(get_sensor_reading, rmcp.USER),
    (NETFN_STORAGE, 0x20): Command(get_sdr_repository_info, rmcp.USER),
    (NETFN_STORAGE, 0x22): Command(reserve, rmcp.USER),
    (NETFN_STORAGE, 0x23): Command(get_sdr, rmcp.USER),
    (NETFN_STORAGE, 0x40): Command(get_sel_info, rmcp.USER),
    (NETFN_STORAGE, 0x42): Command(reserve, rmcp.USER),
    (NETFN_STORAGE, 0x43): Command(get_sel_entry, rmcp.USER),
    (NETFN_STORAGE, 0x47): Command(clear_sel, rmcp.OPERATOR),
    (NETFN_STORAGE, 0x48): Command(get_sel_time, rmcp.USER),
    (NETFN_TRANSPORT, 0x02): Command(get_lan_configuration, rmcp.OPERATOR),
    (NETFN_GROUP, 0x02): Command(get_power_reading, rmcp.USER),
}
