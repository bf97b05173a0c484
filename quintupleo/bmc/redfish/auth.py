"""Who may use the Redfish service (DSP0266 13.3): HTTP Basic, or a session's X-Auth-Token.

Sessions are created by a login (POST to the Sessions collection) and end by a logout (DELETE)
or after `timeout` seconds unused; the oldest gives way when there are MAX_SESSIONS. A token is
never logged. Every password check (Basic or login) goes through the login guard: failures
are counted per source and user name, answered a little later each time, and locked out
(bmc/throttle.py).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from quintupleo.bmc.accounts import Account, Accounts
from quintupleo.bmc.logs import traffic
from quintupleo.bmc.redfish import resources as rf
from quintupleo.bmc.redfish.errors import RedfishError
from quintupleo.bmc.redfish.odata import ROOT, collection, read_body, reply
from quintupleo.bmc.throttle import LockoutPolicy, LoginGuard

MAX_SESSIONS = 64
SERVICE = f"{ROOT}/SessionService"
COLLECTION = f"{SERVICE}/Sessions"
CHALLENGE = {"WWW-Authenticate": 'Basic realm="QuintupleO"'}


def unauthorized(message: str) -> RedfishError:
    return RedfishError(401, message, headers=CHALLENGE)


@dataclass
class WebSession:
    id: str
    username: str
    account: str                  # the account's id: its role is read at every request
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class Sessions:
    accounts: Accounts
    timeout: int = 1800
    guard: LoginGuard = field(default_factory=lambda: LoginGuard(LockoutPolicy()))
    by_token: dict[str, WebSession] = field(default_factory=dict)

    async def authenticate(self, token: str | None, authorization: str,
                           source: str) -> Account:
        """The account a request's X-Auth-Token or Authorization header opens; 401 otherwise."""
        if token:
            session = self._live().get(token)
            account = self.accounts.get(session.account) if session else None
            if session is None or account is None or not account.enabled:
                raise unauthorized("The session token is not valid or has expired.")
            session.last_used = time.monotonic()
            return account
        if authorization.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(authorization[6:], validate=True).decode(
                ).partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise unauthorized("Malformed Basic credentials.") from None
            return await self.check(user, password, source, "Basic authentication")
        raise unauthorized("Authentication required: Basic or X-Auth-Token.")

    async def check(self, user: str, password: str, source: str, how: str) -> Account:
        """The account these credentials open, if neither the source nor the user name is
        locked out; a failure is counted, and answered after the guard's delay."""
        refusal = self.guard.refusal(source, user)
        if refusal is not None:
            traffic.warning("Redfish login refused", "redfish: %s as %r from %s refused: %s",
                            how, user[:32], source, refusal)
            raise RedfishError(401, "Too many failed logins: try again later.",
                               "NoValidSession", headers={
                                   **CHALLENGE,
                                   "Retry-After": str(self.guard.retry_after(source, user))})
        account = self.accounts.check(user, password)
        if account is not None:
            self.guard.succeeded(source, user)
            return account
        delay = self.guard.delay(source)
        locked = self.guard.failed(source, user)
        traffic.warning("Redfish failed login", "redfish: %s as %r from %s failed", how,
                        user[:32], source)
        if locked:
            traffic.warning("Redfish lockout", "redfish: %s now locked out for %.0f s",
                            " and ".join(locked), self.guard.policy.duration)
        await asyncio.sleep(delay)
        raise unauthorized("Invalid user name or password.")

    def login(self, account: Account) -> tuple[str, WebSession]:
        """A new session for an account whose credentials were checked: (token, session)."""
        live = self._live()
        if len(live) >= MAX_SESSIONS:
            del live[min(live, key=lambda t: live[t].last_used)]
        token = secrets.token_urlsafe(24)
        session = WebSession(secrets.token_hex(8), account.username, account.id)
        live[token] = session
        return token, session

    def listed(self) -> list[WebSession]:
        return list(self._live().values())

    def find(self, session_id: str) -> WebSession:
        for session in self._live().values():
            if session.id == session_id:
                return session
        raise RedfishError(404, f"No session {session_id}.", "ResourceNotFound",
                           ("Session", session_id))

    def logout(self, session: WebSession) -> None:
        for token in [t for t, s in self.by_token.items() if s is session]:
            del self.by_token[token]

    def _live(self) -> dict[str, WebSession]:
        now = time.monotonic()
        for token in [t for t, s in self.by_token.items() if now - s.last_used > self.timeout]:
            del self.by_token[token]
        return self.by_token


class SessionHandlers:
    """The SessionService: log in (public), list, read and end sessions."""

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    def routes(self) -> dict[str, dict[str, Any]]:
        return {SERVICE: {"GET": self.service},
                COLLECTION: {"GET": self.list, "POST": self.login},
                f"{COLLECTION}/(?P<id>[^/]+)": {"GET": self.get, "DELETE": self.logout}}

    async def service(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        return reply(rf.session_service(self.sessions.timeout))

    async def list(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        return reply(collection("SessionCollection", COLLECTION, "Sessions",
                                [f"{COLLECTION}/{s.id}" for s in self.sessions.listed()]))

    async def get(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        session = self.sessions.find(match["id"])
        return reply(rf.session(session.id, session.username))

    async def login(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        body = await read_body(request)
        user, password = body.get("UserName"), body.get("Password")
        if not isinstance(user, str) or not isinstance(password, str):
            raise RedfishError(400, "UserName and Password are required.",
                               "ActionParameterMissing", ("Sessions", "UserName, Password"))
        account = await self.sessions.check(user, password, request.remote or "?", "login")
        token, session = self.sessions.login(account)
        return reply(rf.session(session.id, user), 201,
                     {"X-Auth-Token": token, "Location": f"{COLLECTION}/{session.id}"})

    async def logout(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        self.sessions.logout(self.sessions.find(match["id"]))
        return web.Response(status=204)
