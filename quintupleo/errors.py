"""One hierarchy of errors; each says what went wrong and what to do next."""

from __future__ import annotations

from pathlib import Path


class QuintupleOError(Exception):
    """Base of every error a user may see."""


class DevcloudError(QuintupleOError):
    """The local cloud could not be installed, started or stopped."""

    def __init__(self, message: str, *, service: str | None = None,
                 log: Path | None = None, hint: str | None = None) -> None:
        self.service = service
        self.log = log
        self.hint = hint
        parts = [f"{service}: {message}" if service else message]
        if log is not None:
            parts.append(f"log: {log}")
        if hint:
            parts.append(hint)
        super().__init__("\n".join(parts))


class ConfigError(QuintupleOError):
    """A settings file or flag is wrong: says which and how to fix it."""


class StateError(QuintupleOError):
    """A state file of ours (boot overrides, accounts, a journal) is unreadable: names the
    file and what to do; the file is left as it is."""


class BmcError(QuintupleOError):
    """A BMC request could not be done. Each kind knows its IPMI completion code and HTTP status."""

    ipmi_code = 0xFF
    http_status = 500


class NodeBusy(BmcError):
    """The node (or its cloud) is in the middle of something: try again shortly."""

    ipmi_code = 0xC0
    http_status = 503

    def __init__(self, message: str, retry_after: int = 2) -> None:
        super().__init__(message)
        self.retry_after = retry_after   # seconds, for Redfish's Retry-After header


class NotInPresentState(BmcError):
    """The request makes no sense in the node's current state (e.g. power cycle while off)."""

    ipmi_code = 0xD5
    http_status = 409


class InvalidSetting(BmcError):
    """A BIOS attribute that does not exist, is read-only, or a value it cannot take."""

    ipmi_code = 0xCC
    http_status = 400


class NotSupported(BmcError):
    """The backend cannot do this (e.g. a diagnostic interrupt on hardware without one)."""

    ipmi_code = 0xCC
    http_status = 400


class ConsoleInUse(BmcError):
    """The node's one serial console already has a client (SOL or the WebSocket)."""

    ipmi_code = 0x80     # Activate Payload: payload already active on another session
    http_status = 409


class InvalidRequest(BmcError):
    """The request's data is wrong (e.g. a virtual media URL that is not http/https)."""

    ipmi_code = 0xCC
    http_status = 400


class BackendError(BmcError):
    """The cloud or hypervisor refused or failed; the message never holds a secret."""

    ipmi_code = 0xFF
    http_status = 502

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status    # the cloud API's HTTP status, when it answered with one
