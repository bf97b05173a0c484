"""IPMI completion codes: the generic ones (IPMI v2.0 table 5-2) and the command-specific ones
(0x80-0xBE, whose meaning depends on the command) that our commands answer."""

from __future__ import annotations

from enum import IntEnum


class Cc(IntEnum):
    OK = 0x00
    # command-specific
    PARAMETER_NOT_SUPPORTED = 0x80   # Get/Set System Boot Options, Get SOL Configuration
    PAYLOAD_ACTIVE = 0x80            # Activate Payload: already active; Deactivate: not active
    PRIVILEGE_NOT_AVAILABLE = 0x80   # Set Session Privilege Level: not for this user
    SET_IN_PROGRESS = 0x81           # Set System Boot Options: by another party
    PAYLOAD_DISABLED = 0x81          # Activate Payload: this payload type is disabled
    PRIVILEGE_OVER_LIMIT = 0x81      # Set Session Privilege Level: over the session's limit
    INVALID_SESSION_ID = 0x87        # Close Session
    # generic
    NODE_BUSY = 0xC0
    INVALID_COMMAND = 0xC1
    REQUEST_LENGTH = 0xC7
    INVALID_DATA = 0xCC
    INSUFFICIENT_PRIVILEGE = 0xD4
    NOT_IN_PRESENT_STATE = 0xD5
    UNSPECIFIED = 0xFF
