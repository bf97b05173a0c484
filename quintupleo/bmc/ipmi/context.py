"""What every IPMI command handler is given and may raise: the node, the session, a
completion code."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from quintupleo.bmc.accounts import Accounts
from quintupleo.bmc.controller import NodeController
from quintupleo.bmc.ipmi import session as rmcp
from quintupleo.bmc.ipmi import wire
from quintupleo.bmc.ipmi.completion import Cc
from quintupleo.bmc.ipmi.sol import SolConsole


class Completion(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(f"completion code {code:#04x}")
        self.code = code


@dataclass
class BootParameters:
    """System Boot Options parameters 0, 3 and 4: IPMI bookkeeping that no backend needs."""

    set_in_progress: int = 0
    valid_bit_clearing: int = 0
    boot_info_ack: int = 0


@dataclass
class Context:
    """What a handler may touch: one node, its IPMI-only state and the caller's session."""

    controller: NodeController
    guid: bytes
    boot_parameters: BootParameters
    session: rmcp.Session | None
    close_session: Callable[[int], None]
    peer: str
    sol: SolConsole | None = None
    address: wire.Address | None = None  # the client's (host, port), where SOL packets go
    port: int = 623                     # our UDP port, told in Activate Payload
    sessions: dict[int, rmcp.Session] | None = None   # the endpoint's (session info, channel)
    accounts: Accounts | None = None    # the BMC's accounts (user list)
    local_address: str = ""             # the address the BMC listens on (lan print)


def need(data: bytes, length: int) -> None:
    if len(data) < length:
        raise Completion(Cc.REQUEST_LENGTH)


@dataclass(frozen=True)
class Command:
    handler: Callable[[Context, bytes], bytes]
    privilege: int          # lowest session privilege; 0: allowed outside a session
