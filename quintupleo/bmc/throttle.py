"""Online password guessing, slowed down and locked out, as BMCs and web services do it.

Failed logins are counted per source address (for the whole BMC service, over IPMI and
Redfish alike) and per user name (per BMC: each node's IPMI endpoint, and the Redfish service).
A key with `threshold` failures within `window` seconds is locked out for `duration` seconds;
meanwhile its logins are refused whatever the password. Unknown user names are counted and
locked like known ones, so a lockout tells nothing about which names exist. A success forgets
the user's failures. Each failure also slows the source's next answers a little (`delay`).

Memory is bounded: at most CAPACITY keys are remembered, the least recently failed forgotten
first, so a flood of made-up names or addresses cannot grow it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

CAPACITY = 4096
KEY_LENGTH = 64           # a user name as long as a request allows is counted by its start
DELAY_STEP = 0.2          # seconds added to a failed answer per recent failure of its source
MAX_DELAY = 1.0


@dataclass(frozen=True)
class LockoutPolicy:
    """How many failed logins lock a user name or a source out, and for how long (Redfish's
    AccountService says the user name's: AccountLockoutThreshold, AccountLockoutDuration,
    AccountLockoutCounterResetAfter). A threshold of 0 switches that lockout off."""

    user_threshold: int = 5
    source_threshold: int = 20
    duration: float = 60.0
    window: float = 60.0


@dataclass
class _Entry:
    failures: list[float] = field(default_factory=list)   # when, oldest first; at most threshold
    locked_until: float = 0.0


class FailureCounter:
    """Recent failures per key; a key that reaches `threshold` within `window` is locked."""

    def __init__(self, threshold: int, duration: float, window: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.duration = duration
        self.window = window
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def locked(self, key: str) -> float:
        """Seconds left of the key's lockout; 0 when it may try."""
        entry = self._entries.get(key[:KEY_LENGTH])
        return max(0.0, entry.locked_until - self.clock()) if entry else 0.0

    def recent(self, key: str) -> int:
        entry = self._entries.get(key[:KEY_LENGTH])
        if entry is None:
            return 0
        now = self.clock()
        return sum(1 for when in entry.failures if now - when < self.window)

    def failed(self, key: str) -> bool:
        """Count a failure; True when it locks the key out."""
        if self.threshold <= 0:
            return False
        key, now = key[:KEY_LENGTH], self.clock()
        entry = self._entries.pop(key, None) or _Entry()
        self._entries[key] = entry                       # most recent last
        entry.failures = [w for w in entry.failures if now - w < self.window][-self.threshold:]
        entry.failures.append(now)
        while len(self._entries) > CAPACITY:
            self._entries.popitem(last=False)
        if len(entry.failures) >= self.threshold and entry.locked_until <= now:
            entry.locked_until = now + self.duration
            entry.failures.clear()     # the next lockout needs `threshold` failures again
            return True
        return False

    def forgive(self, key: str) -> None:
        """A success, or an administrator's unlock: forget the key's failures and lockout."""
        self._entries.pop(key[:KEY_LENGTH], None)


class LoginGuard:
    """One BMC's view: its own user names, and the service's sources (shared)."""

    def __init__(self, policy: LockoutPolicy, sources: FailureCounter | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.users = FailureCounter(policy.user_threshold, policy.duration, policy.window, clock)
        self.sources = sources or FailureCounter(policy.source_threshold, policy.duration,
                                                 policy.window, clock)
        self.locked_out = 0                 # refusals because of a lockout, for the figures

    def refusal(self, source: str, user: str) -> str | None:
        """Why a login from `source` as `user` is refused before its password is looked at."""
        left = self.sources.locked(source)
        if left:
            self.locked_out += 1
            return (f"{source} is locked out for {left:.0f} s after "
                    f"{self.policy.source_threshold} failed logins")
        left = self.users.locked(user)
        if left:
            self.locked_out += 1
            return (f"user name {user!r} is locked out for {left:.0f} s after "
                    f"{self.policy.user_threshold} failed logins")
        return None

    def retry_after(self, source: str, user: str) -> int:
        return int(max(self.sources.locked(source), self.users.locked(user))) + 1

    def failed(self, source: str, user: str) -> list[str]:
        """Count a failed login; what it locked out, if anything (for the log)."""
        locked = []
        if self.sources.failed(source):
            locked.append(f"source {source}")
        if self.users.failed(user):
            locked.append(f"user name {user!r}")
        return locked

    def succeeded(self, source: str, user: str) -> None:
        """A login proved its password: the user name's failures are forgotten (the source's
        are not: one valid account must not buy guesses at another)."""
        self.users.forgive(user)

    def delay(self, source: str, limit: float = MAX_DELAY) -> float:
        """How long to hold the answer to a login from `source` that failed: grows with the
        source's recent failures, so a guesser is slowed and a typo is not."""
        return min(limit, DELAY_STEP * max(0, self.sources.recent(source) - 1))


class TokenBuckets:
    """At most `rate` events per second per key, in bursts of up to `burst`: what a flood from
    one source may cost before its packets are dropped unread. Bounded like FailureCounter."""

    def __init__(self, rate: float, burst: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # tokens, when
        self.refused = 0

    def allow(self, key: str) -> bool:
        now = self.clock()
        tokens, then = self._buckets.pop(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        allowed = tokens >= 1
        self._buckets[key] = (tokens - 1 if allowed else tokens, now)
        if len(self._buckets) > CAPACITY:
            self._buckets.popitem(last=False)
        if not allowed:
            self.refused += 1
        return allowed
