"""The OData shapes every Redfish resource is made of: typed resources, links, collections."""

from __future__ import annotations

from typing import Any

ROOT = "/redfish/v1"


def odata(type_: str, path: str, **fields: Any) -> dict[str, Any]:
    return {"@odata.type": f"#{type_}", "@odata.id": path, **fields}


def link(path: str) -> dict[str, str]:
    return {"@odata.id": path}


def collection(type_: str, path: str, name: str, members: list[str]) -> dict[str, Any]:
    return odata(f"{type_}.{type_}", path, Name=name, Members=[link(m) for m in members],
                 **{"Members@odata.count": len(members)})
