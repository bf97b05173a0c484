"""The OData shapes every Redfish resource is made of (typed resources, links, collections),
and the JSON a request carries and a reply sends (ETag, Link rel=describedby)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from quintupleo.bmc.redfish.errors import RedfishError

ROOT = "/redfish/v1"
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


async def read_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "null")
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
