"""Pure logic of what stands against hostile clients: login lockouts, RMCP+ session slots and
user-name privacy, flood buckets, JSON nesting, the rate-limited traffic log."""

from __future__ import annotations

import logging
import struct

import pytest

from quintupleo.bmc.ipmi import handshake
from quintupleo.bmc.ipmi.session import SUITES, CipherSuite
from quintupleo.bmc.logs import TrafficLog
from quintupleo.bmc.redfish.odata import MAX_DEPTH, nesting
from quintupleo.bmc.throttle import FailureCounter, LockoutPolicy, LoginGuard, TokenBuckets
from quintupleo.model import Credentials

SUITE = SUITES[17]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_lock_a_key_out_for_a_while_and_old_ones_are_forgotten():
    clock = Clock()
    counter = FailureCounter(threshold=3, duration=60, window=30, clock=clock)
    assert not counter.failed("a") and not counter.failed("a")
    clock.now += 31                                # the window forgets those two
    assert not counter.failed("a") and not counter.failed("a")
    assert counter.failed("a")                     # the third within 30 s locks
    assert counter.locked("a") == 60 and not counter.locked("b")
    clock.now += 59
    assert counter.locked("a") == pytest.approx(1)
    clock.now += 2
    assert not counter.locked("a")
    counter.failed("a")
    counter.forgive("a")                           # a success forgets the failures
    assert counter.recent("a") == 0


def test_memory_stays_bounded_under_made_up_names():
    counter = FailureCounter(threshold=5, duration=60, window=60)
    for index in range(20_000):
        counter.failed(f"name-{index}")
    assert len(counter._entries) <= 4096


def test_a_flood_spends_its_own_bucket_only():
    clock = Clock()
    buckets = TokenBuckets(rate=10, burst=20, clock=clock)
    assert sum(buckets.allow("flood") for _ in range(1000)) == 20
    assert buckets.allow("someone else")
    clock.now += 1
    assert sum(buckets.allow("flood") for _ in range(1000)) == 10


# ---- RMCP+ session setup -----------------------------------------------------------------
def _open(setup: handshake.Handshake, source: str, suite: CipherSuite = SUITE) -> int:
    records = bytes([0, 0, 0, 8, suite.auth_alg, 0, 0, 0, 1, 0, 0, 8, suite.integrity_alg,
                     0, 0, 0, 2, 0, 0, 8, suite.confidentiality_alg, 0, 0, 0])
    answer = setup.open_session(bytes([7, 4, 0, 0]) + struct.pack("<I", 0xA1) + records, source)
    assert answer[1] == handshake.ST_OK
    return struct.unpack_from("<I", answer, 8)[0]


def _rakp1(setup: handshake.Handshake, bmc_id: int, source: str, user: bytes,
           role: int = 0x14) -> bytes:
    return setup.rakp1(bytes([7, 0, 0, 0]) + struct.pack("<I", bmc_id) + bytes(16)
                       + bytes([role, 0, 0, len(user)]) + user, source)


def login(setup: handshake.Handshake, source: str, user: bytes = b"admin",
          password: bytes = b"password", role: int = 0x14) -> int:
    """A whole RMCP+ login as a console makes it; the RAKP 4 status (or the RAKP 2's)."""
    bmc_id = _open(setup, source)
    rakp2 = _rakp1(setup, bmc_id, source, user, role)
    if rakp2[1] != handshake.ST_OK:
        return rakp2[1]
    proof = SUITE.mac(password.ljust(20, b"\0"), rakp2[8:24] + struct.pack("<I", 0xA1)
                      + bytes([role, len(user)]) + user)
    return setup.rakp3(bytes([7, 0, 0, 0]) + struct.pack("<I", bmc_id) + proof, source)[1]


def _setup(clock: Clock | None = None, **policy: float) -> handshake.Handshake:
    guard = LoginGuard(LockoutPolicy(**policy), clock=clock or Clock())   # type: ignore[arg-type]
    return handshake.Handshake(Credentials("admin", "password"), bytes(16), guard=guard)


def test_an_unknown_user_name_looks_like_a_wrong_password():
    setup = _setup()
    known = _rakp1(setup, _open(setup, "192.0.2.1"), "192.0.2.1", b"admin")
    unknown = _rakp1(setup, _open(setup, "192.0.2.1"), "192.0.2.1", b"nobody")
    assert known[1] == unknown[1] == handshake.ST_OK and len(known) == len(unknown)
    assert login(setup, "192.0.2.1", b"nobody", b"password") == handshake.ST_INVALID_ICV
    assert login(setup, "192.0.2.1", b"admin", b"password") == handshake.ST_OK


def test_wrong_passwords_lock_the_name_out_then_it_recovers():
    clock = Clock()
    setup = _setup(clock, user_threshold=3, duration=30)
    for _ in range(3):
        assert login(setup, "192.0.2.1", password=b"guess") == handshake.ST_INVALID_ICV
    # locked: even the right password, even from elsewhere, is refused before RAKP 2
    assert login(setup, "192.0.2.2") == handshake.ST_INSUFFICIENT_RESOURCES
    # made-up names lock out the same way: a lockout tells nothing about which names exist
    for _ in range(3):
        login(setup, "192.0.2.3", b"nobody", b"guess")
    assert login(setup, "192.0.2.3", b"nobody", b"guess") == handshake.ST_INSUFFICIENT_RESOURCES
    clock.now += 31
    assert login(setup, "192.0.2.2") == handshake.ST_OK


def test_a_source_guessing_many_names_is_locked_out():
    setup = _setup(source_threshold=4)
    for index in range(4):
        login(setup, "192.0.2.9", f"user{index}".encode(), b"guess")
    assert login(setup, "192.0.2.9") == handshake.ST_INSUFFICIENT_RESOURCES
    assert login(setup, "192.0.2.10") == handshake.ST_OK


def test_a_rakp2_never_answered_counts_as_a_failed_login():
    """Collecting RAKP 2 hashes to crack offline is guessing too: it locks out."""
    setup = _setup(user_threshold=3)
    for _ in range(3):
        assert _rakp1(setup, _open(setup, "192.0.2.5"), "192.0.2.5", b"admin")[1] == 0
    setup.SETUP_TIMEOUT = 0
    setup.expire()
    setup.SETUP_TIMEOUT = 5
    assert login(setup, "192.0.2.6") == handshake.ST_INSUFFICIENT_RESOURCES


def test_the_role_limit_is_checked_only_after_the_password():
    setup = _setup()
    setup.accounts.create("viewer", "viewer-pw", "ReadOnly")
    assert login(setup, "192.0.2.1", b"viewer", b"guess", role=0x14) == handshake.ST_INVALID_ICV
    assert login(setup, "192.0.2.1", b"viewer", b"viewer-pw", role=0x14) == \
        handshake.ST_INVALID_ROLE
    assert login(setup, "192.0.2.1", b"viewer", b"viewer-pw", role=0x12) == handshake.ST_OK


def test_one_client_with_valid_credentials_cannot_hold_every_session():
    setup = _setup()
    for _ in range(2 * setup.MAX_ACTIVE):
        assert login(setup, "192.0.2.66") == handshake.ST_OK
    held = [s for s in setup.sessions.values() if s.source == "192.0.2.66"]
    assert len(held) == setup.ACTIVE_PER_SOURCE           # its own oldest gave way
    for index in range(setup.MAX_ACTIVE):    # each newcomer gets a slot: the biggest holder
        assert login(setup, f"198.51.100.{index}") == handshake.ST_OK          # gives way
    active = [s for s in setup.sessions.values() if s.active]
    assert len(active) == setup.MAX_ACTIVE
    assert len([s for s in active if s.source == "192.0.2.66"]) <= 1
    # a full table of equals: one who holds as many as anyone gets no more
    assert login(setup, "198.51.100.0") == handshake.ST_INSUFFICIENT_RESOURCES


def test_a_flood_of_setups_from_one_source_leaves_others_theirs():
    setup = _setup()
    legit = _open(setup, "192.0.2.1")
    for _ in range(1000):
        _open(setup, "192.0.2.99")
    pending = [s for s in setup.sessions.values() if s.source == "192.0.2.99"]
    assert len(pending) == setup.PENDING_PER_SOURCE and legit in setup.sessions
    assert _rakp1(setup, legit, "192.0.2.1", b"admin")[1] == handshake.ST_OK
    # and a RAKP from another address cannot continue someone else's setup
    other = _open(setup, "192.0.2.1")
    assert _rakp1(setup, other, "192.0.2.99", b"admin")[1] == handshake.ST_INVALID_SESSION_ID


# ---- Redfish bodies and the log -------------------------------------------------------------
def test_json_nesting_is_measured_outside_strings():
    assert nesting('{"a": [1, {"b": "[[[[{{{{"}]}') == 3
    assert nesting('"\\"[["') == 0
    assert nesting("[" * 5000 + "]" * 5000) == MAX_DEPTH + 1   # counting stops early


def test_the_traffic_log_writes_a_burst_then_counts(caplog):
    traffic = TrafficLog(period=0, burst=2)
    with caplog.at_level(logging.WARNING, "quintupleo.bmc.traffic"):
        traffic.period = 3600
        for index in range(1000):
            traffic.warning("IPMI refused", "refused %d", index)
        traffic.flush(everything=True)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["refused 0", "refused 1",
                     lines[2]] and lines[2].startswith("998 more IPMI refused lines dropped")
