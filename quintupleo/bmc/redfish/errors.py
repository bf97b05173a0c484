"""Redfish error bodies (DSP0266 9.6) with Base registry message IDs."""

from __future__ import annotations

import json

from aiohttp import web

REGISTRY = "Base.1.22"

STATUS_MESSAGES = {
    400: "GeneralError", 401: "NoValidSession", 403: "InsufficientPrivilege",
    404: "ResourceNotFound", 405: "OperationNotAllowed", 409: "OperationFailed",
    412: "PreconditionFailed", 500: "InternalError", 501: "OperationNotAllowed",
    502: "OperationFailed", 503: "ServiceTemporarilyUnavailable",
}

RESOLUTIONS = {
    "MalformedJSON": "Ensure that the request body is valid JSON and resubmit the request.",
    "PropertyUnknown": "Remove the unknown property from the request body and resubmit.",
    "PropertyNotWritable": "Remove the property from the request body and resubmit.",
    "PropertyValueNotInList": "Choose a value from the enumeration list and resubmit.",
    "ActionParameterValueNotInList": "Choose a value from the AllowableValues and resubmit.",
    "ActionParameterMissing": "Resubmit the request with the parameter.",
    "PreconditionFailed": "Read the resource again for its current ETag and resubmit.",
    "NoValidSession": "Log in with Basic authentication or create a session.",
    "ResourceNotFound": "Check the URI and resubmit.",
    "ServiceTemporarilyUnavailable": "Wait and resubmit the request.",
}


class RedfishError(Exception):
    """An error answer: its status, message (Base registry ID and arguments) and the headers it
    needs (Allow with a 405, WWW-Authenticate with a 401, Retry-After with a 503)."""

    def __init__(self, status: int, message: str, message_id: str | None = None,
                 args: tuple[str, ...] = (), headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.message_id = message_id or STATUS_MESSAGES.get(status, "GeneralError")
        self.message_args = args
        self.headers = dict(headers or {})


def error_response(error: RedfishError, headers: dict[str, str] | None = None) -> web.Response:
    info: dict[str, object] = {
        "@odata.type": "#Message.v1_1_1.Message",
        "MessageId": f"{REGISTRY}.{error.message_id}",
        "Message": error.message,
        "Severity": "Critical" if error.status >= 500 else "Warning",
        "Resolution": RESOLUTIONS.get(error.message_id, "None."),
    }
    if error.message_args:
        info["MessageArgs"] = list(error.message_args)
    body = {"error": {"code": f"{REGISTRY}.GeneralError", "message": error.message,
                      "@Message.ExtendedInfo": [info]}}
    return web.Response(status=error.status, text=json.dumps(body),
                        content_type="application/json", headers={**(headers or {}),
                                                                   **error.headers})
