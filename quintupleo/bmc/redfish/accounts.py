"""The AccountService: accounts an Administrator creates, changes and deletes, the standard
roles, and the privilege each request needs (DSP0266's privilege model, simplified to what a
BMC's operations are): reading needs Login; acting on a node (reset, boot, BIOS, media)
ConfigureComponents; accounts ConfigureUsers, except changing one's own password
(ConfigureSelf)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from quintupleo.bmc.accounts import ROLES, Account, Accounts
from quintupleo.bmc.redfish.errors import RedfishError
from quintupleo.bmc.redfish.odata import ROOT, collection, link, odata, read_body, reply
from quintupleo.bmc.throttle import LockoutPolicy, LoginGuard

SERVICE = f"{ROOT}/AccountService"
ACCOUNTS = f"{SERVICE}/Accounts"
ROLE_PATH = f"{SERVICE}/Roles"


def required_privilege(method: str, path: str) -> str:
    if method in ("GET", "HEAD"):
        return "Login"
    if method == "PATCH" and path.startswith(f"{ACCOUNTS}/"):
        return "ConfigureSelf"       # one's own password; the handler asks more of the rest
    if path.startswith(SERVICE):
        return "ConfigureUsers"
    if path.startswith(f"{ROOT}/SessionService/Sessions/"):
        return "Login"               # logging out
    return "ConfigureComponents"


def forbidden(account: Account, privilege: str) -> RedfishError:
    return RedfishError(403, f"The account {account.username} ({account.role}) lacks the "
                        f"{privilege} privilege.", "InsufficientPrivilege")


def account_service(policy: LockoutPolicy) -> dict[str, Any]:
    return odata("AccountService.v1_18_1.AccountService", SERVICE, Id="AccountService",
                 Name="Account Service", ServiceEnabled=True, MinPasswordLength=1,
                 MaxPasswordLength=20, Status={"State": "Enabled", "Health": "OK"},
                 AccountLockoutThreshold=policy.user_threshold,
                 AccountLockoutDuration=int(policy.duration),
                 AccountLockoutCounterResetAfter=int(policy.window),
                 AccountLockoutCounterResetEnabled=True,
                 Accounts=link(ACCOUNTS), Roles=link(ROLE_PATH))


def account(entry: Account, locked: bool = False) -> dict[str, Any]:
    return odata("ManagerAccount.v1_14_1.ManagerAccount", f"{ACCOUNTS}/{entry.id}",
                 Id=entry.id, Name="BMC account", UserName=entry.username, RoleId=entry.role,
                 Enabled=entry.enabled, Locked=locked, AccountTypes=["Redfish", "IPMI"],
                 Password=None, Links={"Role": link(f"{ROLE_PATH}/{entry.role}")})


def role(name: str) -> dict[str, Any]:
    return odata("Role.v1_3_3.Role", f"{ROLE_PATH}/{name}", Id=name, Name=f"{name} role",
                 RoleId=name, IsPredefined=True, AssignedPrivileges=list(ROLES[name]))


class AccountHandlers:
    """The AccountService's handlers; each gets the caller's account in request["account"]."""

    def __init__(self, accounts: Accounts, guard: LoginGuard) -> None:
        self.accounts = accounts
        self.guard = guard            # Locked: the user name is locked out over Redfish

    def _shown(self, entry: Account) -> dict[str, Any]:
        return account(entry, bool(self.guard.users.locked(entry.username)))

    def routes(self) -> dict[str, dict[str, Any]]:
        return {SERVICE: {"GET": self.service},
                ACCOUNTS: {"GET": self.list, "POST": self.create},
                f"{ACCOUNTS}/(?P<id>[^/]+)": {"GET": self.get, "PATCH": self.change,
                                              "DELETE": self.delete},
                ROLE_PATH: {"GET": self.roles},
                f"{ROLE_PATH}/(?P<role>[^/]+)": {"GET": self.role}}

    def _find(self, account_id: str) -> Account:
        found = self.accounts.get(account_id)
        if found is None:
            raise RedfishError(404, f"No account {account_id}.", "ResourceNotFound",
                               ("ManagerAccount", account_id))
        return found

    async def service(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        return reply(account_service(self.guard.policy))

    async def list(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        return reply(collection("ManagerAccountCollection", ACCOUNTS, "Accounts",
                                [f"{ACCOUNTS}/{a.id}" for a in self.accounts.all()]))

    async def get(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        return reply(self._shown(self._find(match["id"])))

    async def create(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        body = await read_body(request)
        username, password = body.get("UserName"), body.get("Password")
        role_id = body.get("RoleId", "ReadOnly")
        if not (isinstance(username, str) and isinstance(password, str)
                and isinstance(role_id, str)):
            raise RedfishError(400, "UserName, Password (and RoleId) are strings.",
                               "PropertyMissing", ("UserName, Password",))
        entry = self.accounts.create(username, password, role_id)   # 400 when invalid
        return reply(account(entry), 201, {"Location": f"{ACCOUNTS}/{entry.id}"})

    async def change(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        caller: Account = request["account"]
        entry = self._find(match["id"])
        body = await read_body(request)
        allowed = {"Password", "RoleId", "Enabled", "Locked"}
        for key in body:
            if key not in allowed:
                raise RedfishError(400, f"Property {key} cannot be changed.",
                                   "PropertyNotWritable", (key,))
        own_password = caller.id == entry.id and set(body) <= {"Password"}
        if not caller.may("ConfigureUsers") and not (own_password
                                                     and caller.may("ConfigureSelf")):
            raise forbidden(caller, "ConfigureUsers")
        if "Locked" in body:        # an administrator may only unlock (DSP2046)
            if body["Locked"] is not False:
                raise RedfishError(400, "Locked may only be set to false (to unlock).",
                                   "PropertyValueNotInList", (json.dumps(body["Locked"]),
                                                              "Locked"))
            self.guard.users.forgive(entry.username)
            body = {k: v for k, v in body.items() if k != "Locked"}
            if not body:
                return reply(self._shown(entry))
        password, role_id, enabled = body.get("Password"), body.get("RoleId"), body.get(
            "Enabled")
        if (password is not None and not isinstance(password, str)) or (
                role_id is not None and not isinstance(role_id, str)) or (
                enabled is not None and not isinstance(enabled, bool)):
            raise RedfishError(400, "Password and RoleId are strings, Enabled a boolean.",
                               "PropertyValueTypeError", ("", "ManagerAccount"))
        return reply(self._shown(self.accounts.change(entry, password, role_id, enabled)))

    async def delete(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        self.accounts.delete(self._find(match["id"]))
        return web.Response(status=204)

    async def roles(self, request: web.Request, _: dict[str, str]) -> web.StreamResponse:
        return reply(collection("RoleCollection", ROLE_PATH, "Roles",
                                [f"{ROLE_PATH}/{name}" for name in ROLES]))

    async def role(self, request: web.Request, match: dict[str, str]) -> web.StreamResponse:
        if match["role"] not in ROLES:
            raise RedfishError(404, f"No role {match['role']}.", "ResourceNotFound",
                               ("Role", match["role"]))
        return reply(role(match["role"]))
