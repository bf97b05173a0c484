"""Open Session and RAKP 1-4 (IPMI v2.0 sections 13.17-13.20): who may open a session on one
node's BMC, and how its session slots are shared.

- Cipher suite 0, anonymous and null-user logins are refused.
- User names cannot be told apart: an unknown name gets a RAKP 2 made with a decoy key, as a
  wrong password would, and fails at RAKP 3. A known account's role limit is checked only
  once its password is proved.
- Failed logins (a console that gives up at RAKP 2, a wrong RAKP 3, a RAKP 2 never answered)
  are counted per source and per user name and locked out (bmc/throttle.py).
- Slots: at most MAX_PENDING setups under way (PENDING_PER_SOURCE per source; one not done in
  SETUP_TIMEOUT s is dropped: a handshake takes milliseconds) and MAX_ACTIVE sessions
  (ACTIVE_PER_SOURCE per source). A source at its share gives way with its own least recently
  used; a full table gives way from the source that holds most. So no one client, not even
  one with valid credentials, keeps the others out.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import struct
import time
from collections import Counter
from collections.abc import Callable

from quintupleo.bmc.accounts import IPMI_PRIVILEGE, Accounts
from quintupleo.bmc.ipmi import wire
from quintupleo.bmc.ipmi.session import ADMINISTRATOR, CALLBACK, SUITES, Session
from quintupleo.bmc.logs import traffic
from quintupleo.bmc.throttle import LockoutPolicy, LoginGuard
from quintupleo.model import Credentials

# RMCP+ status codes (IPMI v2.0 table 13-15)
ST_OK = 0x00
ST_INSUFFICIENT_RESOURCES = 0x01
ST_INVALID_SESSION_ID = 0x02
ST_INVALID_ROLE = 0x09
ST_UNAUTHORIZED_NAME = 0x0D
ST_INVALID_ICV = 0x0F
ST_NO_CIPHER_SUITE_MATCH = 0x11
ST_ILLEGAL_PARAMETER = 0x12

# for the log: (kind, source, what happened); kinds: "failed login", "lockout", "refused setup"
Report = Callable[[str, str, str], None]


class SetupAborted(Exception):
    """The console ended the session setup itself; nothing is answered."""


class Handshake:
    """The session setups and sessions of one BMC endpoint."""

    MAX_ACTIVE = 32
    ACTIVE_PER_SOURCE = 8
    MAX_PENDING = 16
    PENDING_PER_SOURCE = 4
    SETUP_TIMEOUT = 5.0

    def __init__(self, credentials: Credentials, guid: bytes, timeout: float = 60.0,
                 accounts: Accounts | None = None, guard: LoginGuard | None = None,
                 on_close: Callable[[Session], None] = lambda session: None,
                 report: Report = lambda kind, source, reason: None) -> None:
        self.credentials = credentials          # account 1 as this node has it
        self.accounts = accounts or Accounts(credentials)
        self.guid = guid
        self.timeout = timeout
        self.guard = guard or LoginGuard(LockoutPolicy())
        self.on_close = on_close                # e.g. SOL ends with its session
        self.report = report
        self.sessions: dict[int, Session] = {}
        self._decoy = os.urandom(32)

    # ---- the session table ---------------------------------------------------------------
    def expire(self) -> None:
        now = time.monotonic()
        for session in [s for s in self.sessions.values()
                        if now - s.last_seen > (self.timeout if s.active else self.SETUP_TIMEOUT)]:
            self._drop(session, None if session.active else
                       "no RAKP 3 after our RAKP 2 (a console that stopped, or one collecting "
                       "password hashes)")

    def get(self, bmc_id: int) -> Session | None:
        self.expire()
        return self.sessions.get(bmc_id)

    def close(self, bmc_id: int) -> None:
        session = self.sessions.get(bmc_id)
        if session is not None:
            self._drop(session, None)

    def _drop(self, session: Session, failure: str | None) -> None:
        """Forget a session; `failure`: it was a login that failed (counted only if a RAKP 2,
        which discloses the password's hash, went out for it)."""
        del self.sessions[session.bmc_id]
        if failure is not None and session.rc and not session.active:
            name = session.username.decode(errors="replace")
            locked = self.guard.failed(session.source, name)
            self.report("failed login", session.source, f"user name {name!r}, {failure}")
            if locked:
                self.report("lockout", session.source, f"{' and '.join(locked)} now locked "
                            f"out for {self.guard.policy.duration:.0f} s")
        self.on_close(session)

    def _make_room(self, source: str, active: bool) -> bool:
        """Free a slot for `source` among the active sessions or the setups; False if none
        may be taken from anyone."""
        group = [s for s in self.sessions.values() if s.active is active]
        limit, share = ((self.MAX_ACTIVE, self.ACTIVE_PER_SOURCE) if active
                        else (self.MAX_PENDING, self.PENDING_PER_SOURCE))
        mine = [s for s in group if s.source == source]
        if len(mine) >= share:
            victims = mine
        elif len(group) >= limit:
            held = Counter(s.source for s in group)
            most = max(held.values())
            if active and most <= len(mine):
                return False
            victims = [s for s in group if held[s.source] == most]
        else:
            return True
        victim = min(victims, key=lambda s: s.last_seen)
        if victim.active:
            traffic.warning("IPMI session given way", "IPMI session of %s closed to make room"
                            " for %s (%d of %d in use)", victim.source, source, len(group),
                            limit, level=logging.INFO)
        self._drop(victim, "no RAKP 3 before a newer setup took its slot")
        return True

    # ---- Open Session and RAKP -------------------------------------------------------------
    def open_session(self, payload: bytes, source: str) -> bytes:
        """Open Session Request (0x10) -> Open Session Response payload (0x11)."""
        if len(payload) < 32:
            raise wire.Malformed("short Open Session Request")
        tag, requested = payload[0], payload[1] & 0x0F
        console_id = struct.unpack_from("<I", payload, 4)[0]
        algorithms_offered = []
        for offset, kind in ((8, 0), (16, 1), (24, 2)):
            record = payload[offset:offset + 8]
            if record[0] != kind or record[3] != 8:
                return self._refuse(tag, ST_ILLEGAL_PARAMETER, console_id, source,
                                    "illegal algorithm record")
            algorithms_offered.append(record[4] & 0x3F)
        suite = next((s for s in SUITES.values() if algorithms_offered ==
                      [s.auth_alg, s.integrity_alg, s.confidentiality_alg]), None)
        if suite is None:   # cipher suite 0 (no auth) and everything else we do not offer
            return self._refuse(tag, ST_NO_CIPHER_SUITE_MATCH, console_id, source,
                                "no matching cipher suite (we offer 17 and 3)")
        if requested > ADMINISTRATOR:
            return self._refuse(tag, ST_INVALID_ROLE, console_id, source, "invalid role")
        self.expire()
        self._make_room(source, active=False)
        bmc_id = 0
        while bmc_id == 0 or bmc_id in self.sessions:
            bmc_id = int.from_bytes(os.urandom(4), "little")
        session = Session(bmc_id, console_id, suite, requested or ADMINISTRATOR, source=source)
        self.sessions[bmc_id] = session
        return bytes([tag, ST_OK, session.max_privilege, 0]) + struct.pack(
            "<II", console_id, bmc_id) + payload[8:32]

    def _refuse(self, tag: int, status: int, console_id: int, source: str,
                reason: str) -> bytes:
        self.report("refused setup", source, reason)
        return bytes([tag, status, 0, 0]) + struct.pack("<I", console_id)

    def _pending(self, payload: bytes, source: str) -> Session | None:
        """The setup a RAKP message continues: this source's, not yet active."""
        session = self.get(struct.unpack_from("<I", payload, 4)[0])
        if session is None or session.active or session.source != source:
            return None
        return session

    def rakp1(self, payload: bytes, source: str) -> bytes:
        """RAKP Message 1 (0x12) -> RAKP Message 2 payload (0x13)."""
        if len(payload) < 28:
            raise wire.Malformed("short RAKP 1")
        tag = payload[0]
        session = self._pending(payload, source)
        if session is None:     # (a RAKP 1 sent again, its RAKP 2 lost, is answered again)
            return bytes([tag, ST_INVALID_SESSION_ID, 0, 0]) + bytes(4)
        role, name_length = payload[24], payload[27]
        username = payload[28:28 + name_length]
        name = username.decode(errors="replace")
        error: tuple[int, str | None] = (ST_OK, None)
        if len(username) != name_length or name_length > 16:
            error = ST_ILLEGAL_PARAMETER, "illegal user name length"
        elif not username:
            error = ST_UNAUTHORIZED_NAME, "null user name (anonymous logins are off)"
        elif not CALLBACK <= role & 0x0F <= ADMINISTRATOR:
            error = ST_INVALID_ROLE, "invalid role"
        else:
            error = ST_INSUFFICIENT_RESOURCES, self.guard.refusal(source, name)
        status, reason = error
        if reason is not None:
            self.close(session.bmc_id)
            return self._refuse(tag, status, session.console_id, source, reason)
        account = self.accounts.named(name, self.credentials)
        # an unknown name is answered as a wrong password would be: with a key nobody knows
        key = account.credentials.key if account else hmac.new(
            self._decoy, username, hashlib.sha256).digest()[:20]
        session.account_privilege = IPMI_PRIVILEGE[account.role] if account else 0
        session.rm, session.rc = payload[8:24], os.urandom(16)
        session.role, session.username, session.key = role, username, key
        session.max_privilege = role & 0x0F
        session.last_seen = time.monotonic()
        auth_code = session.suite.mac(session.key, struct.pack(
            "<II", session.console_id, session.bmc_id) + session.rm + session.rc + self.guid
            + bytes([role, name_length]) + username)
        return bytes([tag, ST_OK, 0, 0]) + struct.pack("<I", session.console_id) + session.rc \
            + self.guid + auth_code

    def rakp3(self, payload: bytes, source: str) -> bytes:
        """RAKP Message 3 (0x14) -> RAKP Message 4 payload (0x15); the session becomes active
        only if the console proved it knows the password."""
        if len(payload) < 8:
            raise wire.Malformed("short RAKP 3")
        tag, status = payload[0], payload[1]
        session = self.get(struct.unpack_from("<I", payload, 4)[0])
        if session is not None and session.active and session.source == source \
                and session.rakp3 == payload:
            return session.rakp4        # our RAKP 4 was lost and the console asks again
        session = self._pending(payload, source)
        if session is None or not session.rc:
            return bytes([tag, ST_INVALID_SESSION_ID, 0, 0]) + bytes(4)
        refused = bytes([tag, 0, 0, 0]) + struct.pack("<I", session.console_id)
        if status != ST_OK:     # the console gave up: our RAKP 2 did not match its password
            self._drop(session, f"the console aborted with status {status:#04x} (a wrong "
                                "password or an unknown user name)")
            raise SetupAborted
        expected = session.suite.mac(session.key, session.rc + struct.pack(
            "<I", session.console_id) + bytes([session.role, len(session.username)])
            + session.username)
        if not hmac.compare_digest(expected, payload[8:]) or not session.account_privilege:
            self._drop(session, "RAKP 3 check failed (a wrong password)")
            return bytes([tag, ST_INVALID_ICV]) + refused[2:]
        name = session.username.decode(errors="replace")
        self.guard.succeeded(source, name)
        if session.max_privilege > session.account_privilege:
            self.close(session.bmc_id)
            return self._refuse(tag, ST_INVALID_ROLE, session.console_id, source,
                                f"role above the limit of {name!r}")
        if not self._make_room(source, active=True):
            self.close(session.bmc_id)
            return self._refuse(tag, ST_INSUFFICIENT_RESOURCES, session.console_id, source,
                                f"all {self.MAX_ACTIVE} sessions in use")
        session.derive_keys(session.key)
        session.active = True
        session.last_seen = time.monotonic()
        session.rakp3 = payload
        session.rakp4 = bytes([tag, ST_OK, 0, 0]) + struct.pack("<I", session.console_id) \
            + session.rakp4_icv(self.guid)
        return session.rakp4
