"""The BMC's user accounts and their roles, shared by Redfish and IPMI.

Account 1 is the one the settings give (`--username`, `--password`; per-node passwords for
IPMI): an Administrator that cannot be deleted or renamed here. An Administrator creates,
changes and deletes more over Redfish's AccountService; they are kept in `accounts.sqlite`
(readable by its owner only: IPMI's RAKP needs the password itself, as on every BMC) and serve
every node, over both protocols. Roles are Redfish's standard three, with their privileges;
over IPMI a role is a privilege limit (Administrator, Operator, User).
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass, replace
from pathlib import Path

from quintupleo.errors import BmcError
from quintupleo.model import Credentials
from quintupleo.sqlite import open_database

log = logging.getLogger(__name__)

#: Redfish role -> its privileges (DSP0266's standard roles)
ROLES: dict[str, tuple[str, ...]] = {
    "Administrator": ("Login", "ConfigureManager", "ConfigureUsers", "ConfigureSelf",
                      "ConfigureComponents"),
    "Operator": ("Login", "ConfigureSelf", "ConfigureComponents"),
    "ReadOnly": ("Login", "ConfigureSelf"),
}
IPMI_PRIVILEGE = {"Administrator": 4, "Operator": 3, "ReadOnly": 2}
MAX_ACCOUNTS = 15          # IPMI user IDs 2..16 (1 is the anonymous user)
SERVICE_ACCOUNT = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS account (
    id       TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password TEXT NOT NULL,
    role     TEXT NOT NULL,
    enabled  INTEGER NOT NULL
)"""


class AccountError(BmcError):
    """An account change that cannot be made (a name taken, a bad role or password)."""

    ipmi_code = 0xCC
    http_status = 400


@dataclass(frozen=True)
class Account:
    id: str
    credentials: Credentials
    role: str = "Administrator"
    enabled: bool = True

    @property
    def username(self) -> str:
        return self.credentials.username

    def may(self, privilege: str) -> bool:
        return privilege in ROLES[self.role]


class Accounts:
    def __init__(self, service: Credentials, path: Path | None = None) -> None:
        self.service = Account(SERVICE_ACCOUNT, service)
        self._db = open_database(path, _SCHEMA, private=True) if path is not None else None
        self._extra: dict[str, Account] = {}
        if self._db is not None:
            for id_, username, password, role, enabled in self._db.execute(
                    "SELECT id, username, password, role, enabled FROM account"):
                if role in ROLES and username != service.username:
                    self._extra[id_] = Account(id_, Credentials(username, password), role,
                                               bool(enabled))

    def all(self) -> list[Account]:
        return [self.service, *sorted(self._extra.values(), key=lambda a: int(a.id))]

    def get(self, account_id: str) -> Account | None:
        return self.service if account_id == SERVICE_ACCOUNT else self._extra.get(account_id)

    def named(self, username: str, service: Credentials | None = None) -> Account | None:
        """The enabled account of that name (`service`: a node's own credentials for account 1)."""
        first = replace(self.service, credentials=service) if service else self.service
        for account in (first, *self._extra.values()):
            if account.enabled and hmac.compare_digest(account.username.encode(),
                                                       username.encode()):
                return account
        return None

    def check(self, username: str, password: str) -> Account | None:
        """The account these credentials open, compared in constant time; None if none."""
        account = self.named(username)
        expected = account.credentials.password if account else "\0" * len(password)
        ok = hmac.compare_digest(password.encode(), expected.encode())
        return account if account is not None and ok else None

    def create(self, username: str, password: str, role: str) -> Account:
        self._valid(username, password, role)
        if any(a.username == username for a in self.all()):
            raise AccountError(f"an account named {username!r} exists already")
        if len(self._extra) >= MAX_ACCOUNTS - 1:
            raise AccountError(f"no room for another account ({MAX_ACCOUNTS} at most)")
        used = {int(i) for i in self._extra}
        account_id = str(next(i for i in range(2, MAX_ACCOUNTS + 1) if i not in used))
        account = Account(account_id, Credentials(username, password), role)
        self._put(account)
        log.info("account %s (%s, %s) created", account_id, username, role)
        return account

    def change(self, account: Account, password: str | None = None, role: str | None = None,
               enabled: bool | None = None) -> Account:
        if account.id == SERVICE_ACCOUNT:
            raise AccountError("account 1 comes from the BMC's settings: change it there")
        new = Account(account.id, Credentials(account.username,
                                              account.credentials.password
                                              if password is None else password),
                      account.role if role is None else role,
                      account.enabled if enabled is None else enabled)
        self._valid(new.username, new.credentials.password, new.role)
        self._put(new)
        log.info("account %s (%s) changed", account.id, account.username)
        return new

    def delete(self, account: Account) -> None:
        if account.id == SERVICE_ACCOUNT:
            raise AccountError("account 1 comes from the BMC's settings and cannot be deleted")
        self._extra.pop(account.id, None)
        if self._db is not None:
            self._db.execute("DELETE FROM account WHERE id = ?", (account.id,))
        log.info("account %s (%s) deleted", account.id, account.username)

    @staticmethod
    def _valid(username: str, password: str, role: str) -> None:
        if not username or len(username.encode()) > 16 or not username.isprintable():
            raise AccountError("a user name is 1 to 16 printable bytes (IPMI's limit)")
        if not password or len(password.encode()) > 20:
            raise AccountError("a password is 1 to 20 bytes (IPMI 2.0's limit)")
        if role not in ROLES:
            raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")

    def _put(self, account: Account) -> None:
        self._extra[account.id] = account
        if self._db is not None:
            self._db.execute(
                "INSERT OR REPLACE INTO account (id, username, password, role, enabled) "
                "VALUES (?, ?, ?, ?, ?)", (account.id, account.username,
                                           account.credentials.password, account.role,
                                           int(account.enabled)))

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
