"""IPMI commands a provisioning tool sends, translated into node-controller calls.

Each handler takes the request data and returns the response data after the completion code,
or raises Completion (or a BmcError, which carries its own completion code).
"""

from __future__ import annotations

import logging
import struct

from quintupleo.bmc.ipmi import management, sol
from quintupleo.bmc.ipmi import session as rmcp
from quintupleo.bmc.ipmi.completion import Cc
from quintupleo.bmc.ipmi.context import Command, Completion, Context, need
from quintupleo.errors import BmcError
from quintupleo.model import BootDevice, BootMode, BootOverride, PowerAction, PowerState

log = logging.getLogger(__name__)

NETFN_CHASSIS, NETFN_APP, NETFN_TRANSPORT = 0x00, 0x06, 0x0C

CHASSIS_CONTROL = {0: PowerAction.OFF, 1: PowerAction.ON, 2: PowerAction.CYCLE,
                   3: PowerAction.RESET, 4: PowerAction.DIAG_INTERRUPT, 5: PowerAction.SOFT_OFF}

# Boot device selector, bits 5:2 of boot flags data byte 2 (IPMI v2.0 table 28-14)
SELECTOR_TO_DEVICE = {0x0: BootDevice.NONE, 0x1: BootDevice.PXE, 0x2: BootDevice.DISK,
                      0x3: BootDevice.DISK, 0x5: BootDevice.CDROM, 0x6: BootDevice.BIOS,
                      0x8: BootDevice.CDROM}
# IPMI has no UEFI HTTP boot: it reads back as the nearest thing, a network boot.
DEVICE_TO_SELECTOR = {BootDevice.NONE: 0x0, BootDevice.PXE: 0x1, BootDevice.DISK: 0x2,
                      BootDevice.CDROM: 0x5, BootDevice.BIOS: 0x6, BootDevice.HTTP: 0x1}


# ---- App (netfn 0x06) --------------------------------------------------------------------
def get_device_id(ctx: Context, data: bytes) -> bytes:
    # device 0x20, rev 1 (no device SDRs), firmware 0.1, IPMI 2.0; manufacturer 0;
    # additional device support: chassis, SEL, SDR repository and sensor device (0x87)
    return bytes([0x20, 0x01, 0x00, 0x01, 0x02, 0x87, 0, 0, 0, 0x51, 0x4F, 0, 0, 0, 0])


def get_system_guid(ctx: Context, data: bytes) -> bytes:
    return ctx.guid


def get_channel_auth_capabilities(ctx: Context, data: bytes) -> bytes:
    need(data, 2)
    if data[0] & 0x0F not in (0x0E, 0x01):
        raise Completion(Cc.INVALID_DATA)
    v2 = 0x80 if data[0] & 0x80 else 0x00
    # No IPMI 1.5 auth types; non-null user names only; IPMI 2.0 connections supported.
    return bytes([0x01, v2, 0x04, 0x02, 0, 0, 0, 0])


def get_session_challenge(ctx: Context, data: bytes) -> bytes:
    # IPMI 1.5 sessions (MD5/password auth) are not offered: use -I lanplus.
    raise Completion(Cc.INVALID_DATA)


def get_channel_cipher_suites(ctx: Context, data: bytes) -> bytes:
    need(data, 3)
    if data[0] & 0x0F not in (0x0E, 0x01):
        raise Completion(Cc.INVALID_DATA)
    if data[1] != 0x00:   # only the IPMI payload has cipher suites
        return bytes([0x01])
    index = data[2] & 0x3F
    return bytes([0x01]) + rmcp.CIPHER_SUITE_RECORDS[index * 16:(index + 1) * 16]


def set_session_privilege(ctx: Context, data: bytes) -> bytes:
    need(data, 1)
    assert ctx.session is not None
    level = data[0] & 0x0F
    if level == 0:
        return bytes([ctx.session.privilege])
    if level > rmcp.ADMINISTRATOR or level == rmcp.CALLBACK:
        raise Completion(Cc.PRIVILEGE_NOT_AVAILABLE)
    if level > ctx.session.max_privilege:
        raise Completion(Cc.PRIVILEGE_OVER_LIMIT)
    ctx.session.privilege = level
    return bytes([level])


def close_session(ctx: Context, data: bytes) -> bytes:
    need(data, 4)
    assert ctx.session is not None
    bmc_id = struct.unpack_from("<I", data)[0]
    if bmc_id != ctx.session.bmc_id:
        raise Completion(Cc.INVALID_SESSION_ID)
    ctx.close_session(bmc_id)
    return b""


# ---- Chassis (netfn 0x00) ----------------------------------------------------------------
def get_chassis_status(ctx: Context, data: bytes) -> bytes:
    on = ctx.controller.power_state() is PowerState.ON
    # power restore policy "always off" (0b00 in bits 6:5); no faults; no last event
    return bytes([0x01 if on else 0x00, 0x00, management.identify_state(ctx)])


def chassis_control(ctx: Context, data: bytes) -> bytes:
    need(data, 1)
    action = CHASSIS_CONTROL.get(data[0] & 0x0F)
    if action is None:
        raise Completion(Cc.INVALID_DATA)
    ctx.controller.request(action, source=f"IPMI {ctx.peer}")
    return b""


def set_system_boot_options(ctx: Context, data: bytes) -> bytes:
    need(data, 1)
    parameter, value = data[0] & 0x7F, data[1:]
    params = ctx.boot_parameters
    if parameter == 0:
        need(value, 1)
        if value[0] & 0x03 == 0x03:
            raise Completion(Cc.INVALID_DATA)
        if value[0] & 0x03 == 0x01 and params.set_in_progress == 0x01:
            raise Completion(Cc.SET_IN_PROGRESS)
        params.set_in_progress = value[0] & 0x03 if value[0] & 0x03 != 0x02 else 0
    elif parameter == 3:
        need(value, 1)
        params.valid_bit_clearing = value[0] & 0x1F
    elif parameter == 4:
        need(value, 2)
        params.boot_info_ack = (params.boot_info_ack & ~value[0] | value[1] & value[0]) & 0xFF
    elif parameter == 5:
        need(value, 5)
        ctx.controller.set_boot_override(decode_boot_flags(value))
    else:
        raise Completion(Cc.PARAMETER_NOT_SUPPORTED)
    return b""


def decode_boot_flags(value: bytes) -> BootOverride:
    valid, persistent, efi = value[0] & 0x80, value[0] & 0x40, value[0] & 0x20
    device = SELECTOR_TO_DEVICE.get((value[1] >> 2) & 0x0F)
    if device is None:
        raise Completion(Cc.INVALID_DATA)   # floppy, diagnostic partition, remote HDD
    mode = BootMode.UEFI if efi else BootMode.LEGACY
    if not valid:
        device = BootDevice.NONE
    return BootOverride(device, bool(persistent) and device is not BootDevice.NONE, mode)


def encode_boot_flags(override: BootOverride) -> bytes:
    first = (0x80 if override.active else 0) | (0x40 if override.persistent else 0) \
        | (0x20 if override.mode is BootMode.UEFI else 0)
    return bytes([first, DEVICE_TO_SELECTOR[override.device] << 2, 0, 0, 0])


def get_system_boot_options(ctx: Context, data: bytes) -> bytes:
    need(data, 3)
    parameter = data[0] & 0x7F
    params = ctx.boot_parameters
    values = {0: bytes([params.set_in_progress]), 3: bytes([params.valid_bit_clearing]),
              4: bytes([0x00, params.boot_info_ack])}
    if parameter == 5:
        value = encode_boot_flags(ctx.controller.override)
    elif parameter in values:
        value = values[parameter]
    else:
        raise Completion(Cc.PARAMETER_NOT_SUPPORTED)
    return bytes([0x01, parameter]) + value


# ---- Serial-over-LAN (App 0x48-0x4A, Transport 0x21-0x22) ---------------------------------
def activate_payload(ctx: Context, data: bytes) -> bytes:
    need(data, 6)
    if data[0] & 0x3F != 0x01 or data[1] != 1 or ctx.sol is None:
        raise Completion(Cc.INVALID_DATA)          # only SOL, instance 1
    if not ctx.controller.has_console:             # e.g. a cloud without serial consoles
        raise Completion(Cc.PAYLOAD_DISABLED)
    if ctx.sol.active:
        raise Completion(Cc.PAYLOAD_ACTIVE)
    assert ctx.session is not None and ctx.address is not None
    ctx.sol.activate(ctx.session, ctx.address)
    return struct.pack("<IHHHH", 0, sol.PAYLOAD_SIZE, sol.PAYLOAD_SIZE, ctx.port, 0xFFFF)


def deactivate_payload(ctx: Context, data: bytes) -> bytes:
    need(data, 2)
    if data[0] & 0x3F != 0x01 or ctx.sol is None or not ctx.sol.active:
        raise Completion(Cc.PAYLOAD_ACTIVE)
    ctx.sol.deactivate()
    return b""


def get_payload_activation_status(ctx: Context, data: bytes) -> bytes:
    need(data, 1)
    if data[0] & 0x3F != 0x01:
        raise Completion(Cc.INVALID_DATA)
    return bytes([1, 1 if ctx.sol is not None and ctx.sol.active else 0, 0])


def get_sol_configuration(ctx: Context, data: bytes) -> bytes:
    need(data, 4)
    if data[0] & 0x80:                         # "get parameter revision only"
        return bytes([0x11])
    if data[1] == 8:                           # SOL payload port: ours
        return bytes([0x11]) + struct.pack("<H", ctx.port)
    if data[1] == 1 and not ctx.controller.has_console:
        return bytes([0x11, 0x00])             # SOL disabled: the node has no serial console
    if data[1] not in sol.PARAMETERS:
        raise Completion(Cc.PARAMETER_NOT_SUPPORTED)
    return bytes([0x11]) + sol.PARAMETERS[data[1]]


def set_sol_configuration(ctx: Context, data: bytes) -> bytes:
    need(data, 2)
    return b""    # accepted, not changed: the console's settings are the node's own



COMMANDS: dict[tuple[int, int], Command] = {
    (NETFN_APP, 0x01): Command(get_device_id, rmcp.USER),
    (NETFN_APP, 0x37): Command(get_system_guid, rmcp.USER),
    (NETFN_APP, 0x38): Command(get_channel_auth_capabilities, 0),
    (NETFN_APP, 0x39): Command(get_session_challenge, 0),
    (NETFN_APP, 0x3B): Command(set_session_privilege, rmcp.USER),
    (NETFN_APP, 0x3C): Command(close_session, rmcp.CALLBACK),
    (NETFN_APP, 0x48): Command(activate_payload, rmcp.USER),
    (NETFN_APP, 0x49): Command(deactivate_payload, rmcp.USER),
    (NETFN_APP, 0x4A): Command(get_payload_activation_status, rmcp.USER),
    (NETFN_APP, 0x54): Command(get_channel_cipher_suites, 0),
    (NETFN_TRANSPORT, 0x21): Command(set_sol_configuration, rmcp.ADMINISTRATOR),
    (NETFN_TRANSPORT, 0x22): Command(get_sol_configuration, rmcp.USER),
    (NETFN_CHASSIS, 0x01): Command(get_chassis_status, rmcp.USER),
    (NETFN_CHASSIS, 0x02): Command(chassis_control, rmcp.OPERATOR),
    (NETFN_CHASSIS, 0x08): Command(set_system_boot_options, rmcp.OPERATOR),
    (NETFN_CHASSIS, 0x09): Command(get_system_boot_options, rmcp.USER),
    **management.COMMANDS,
}


def execute(ctx: Context, netfn: int, cmd: int, data: bytes) -> tuple[int, bytes]:
    """Run one command; always returns (completion code, data), never raises."""
    command = COMMANDS.get((netfn, cmd))
    if command is None:
        return Cc.INVALID_COMMAND, b""
    if ctx.session is None and command.privilege:
        return Cc.INSUFFICIENT_PRIVILEGE, b""
    if ctx.session is not None and ctx.session.privilege < command.privilege:
        return Cc.INSUFFICIENT_PRIVILEGE, b""
    try:
        return Cc.OK, command.handler(ctx, data)
    except Completion as exc:
        return exc.code, b""
    except BmcError as exc:
        log.warning("node %s: %s", ctx.controller.info.name, exc)
        return exc.ipmi_code, b""
    except Exception:
        log.exception("node %s: command %#04x/%#04x failed", ctx.controller.info.name,
                      netfn, cmd)
        return Cc.UNSPECIFIED, b""
