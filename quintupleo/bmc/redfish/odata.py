"""The OData shapes every Redfish resource is made of (typed resources, links, collections),
and the JSON a request carries and a reply sends (ETag, Link rel=describedby).

A request body is taken only as `application/json` in UTF-8 (415 otherwise: a form or text
body is what a browser may be made to send across sites), within the idle timeout, and
nested at most MAX_DEPTH deep (no Redfish body nests more than a few levels)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from typing import Any

from aiohttp import web

from quintupleo.bmc.redfish.errors import RedfishError

ROOT = "/redfish/v1"
MAX_DEPTH = 16
BODY_TIMEOUT = web.AppKey("body_timeout", float)     # seconds (the service's idle timeout)
_NESTING = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')   # strings (skipped) and brackets
SCHEMAS = "http://redfish.dmtf.org/schemas/v1"   # where the JSON schemas of Link: are


def odata(type_: str, path: str, **fields: Any) -> dict[str, Any]:
    return {"@odata.type": f"#{type_}", "@odata.id": path, **fields}


def link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def collection(type_: str, path: str, name: str, members: list[str]) -> dict[str, Any]:
    return odata(f"{type_}.{type_}", path, Name=name, Members=[link(m) for m in members],
                 **{"Members@odata.count": len(members)})


def schema_of(body: dict[str, Any]) -> str | None:
    """The JSON schema a resource follows (its versioned namespace), from its @odata.type:
    `#ComputerSystem.v1_27_0.ComputerSystem` -> `ComputerSystem.v1_27_0`."""
    type_ = body.get("@odata.type")
    if not isinstance(type_, str):
        return None
    namespace, _, _ = type_.lstrip("#").rpartition(".")
    return namespace or None


def reply(body: dict[str, Any], status: int = 200,
          headers: dict[str, str] | None = None) -> web.Response:
    text = json.dumps(body)
    etag = 'W/"' + hashlib.sha1(text.encode()).hexdigest()[:16] + '"'
    described = {"Link": f"<{SCHEMAS}/{schema}.json>; rel=describedby"} if (
        schema := schema_of(body)) else {}
    return web.Response(status=status, text=text, content_type="application/json",
                        headers={"ETag": etag, **described, **(headers or {})})


def json_only(request: web.Request) -> None:
    """415 for a body that is not JSON in UTF-8 (or says it is something else)."""
    content_type = request.headers.get("Content-Type")
    if content_type is None and not request.body_exists:
        return
    charset = (request.charset or "utf-8").lower()
    if request.content_type != "application/json" or charset not in ("utf-8", "utf8"):
        shown = (content_type or "none")[:80]
        raise RedfishError(415, f"Content-Type {shown!r} is not accepted: send the body as "
                           "application/json (UTF-8).", "HeaderInvalid",
                           (f"Content-Type: {shown}",))


def nesting(text: str) -> int:
    """How deep the JSON text's objects and arrays nest (stops counting past MAX_DEPTH)."""
    depth = deepest = 0
    for token in _NESTING.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        elif bracket in "]}":
            depth -= 1
    return deepest


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


async def read_body(request: web.Request) -> dict[str, Any]:
    json_only(request)
    timeout = request.app.get(BODY_TIMEOUT, 15.0)
    try:
        raw = await asyncio.wait_for(request.read(), timeout)
    except TimeoutError:
        raise RedfishError(408, f"The request body did not arrive within {timeout:.0f} s."
                           ) from None
    try:
        text = raw.decode()
        if nesting(text) > MAX_DEPTH:
            raise RedfishError(400, f"The request body nests deeper than {MAX_DEPTH} levels.",
                               "MalformedJSON")
        body = json.loads(text or "null", parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError):
        raise RedfishError(400, "The request body is not valid JSON.", "MalformedJSON") from None
    if not isinstance(body, dict):
        raise RedfishError(400, "The request body must be a JSON object.", "MalformedJSON")
    return body


def writable(body: dict[str, Any], resource: dict[str, Any], allowed: set[str]) -> None:
    """400 for the first property of a PATCH that is not one of `allowed`."""
    for key in body:
        if key not in allowed:
            raise RedfishError(400, f"Property {key} cannot be changed.",
                               "PropertyNotWritable" if key in resource
                               else "PropertyUnknown", (key,))
