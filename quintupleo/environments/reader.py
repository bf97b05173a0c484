"""Walking a spec's YAML tree with error messages that name the key at fault."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from quintupleo.errors import ConfigError

NAME = re.compile(r"^[a-z][a-z0-9-]{0,23}$")


class SpecError(ConfigError):
    def __init__(self, source: str, key: str, message: str) -> None:
        super().__init__(f"{source}: {key}: {message}")


class Reader:
    """Walks the YAML tree, remembering where it is for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, message: str) -> SpecError:
        return SpecError(self.source, key, message)

    def mapping(self, value: Any, key: str, allowed: set[str],
                required: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, "expected a mapping")
        unknown = set(value) - allowed
        if unknown:
            raise self.fail(f"{key}.{sorted(unknown)[0]}" if key else sorted(unknown)[0],
                            f"unknown key; allowed: {', '.join(sorted(allowed))}")
        for name in sorted(required - set(value)):
            raise self.fail(f"{key}.{name}" if key else name, "required")
        return value

    def name(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not NAME.match(value):
            raise self.fail(key, "lower-case letters, digits and '-', starting with a letter, "
                                 "at most 24 characters")
        return value

    def text(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "expected a non-empty string")
        return value

    def cidr(self, value: Any, key: str) -> str:
        try:
            return str(ipaddress.ip_network(self.text(value, key)))
        except ValueError as exc:
            raise self.fail(key, f"not a network: {exc}") from None

    def where(self, data: dict[str, Any], key: str) -> tuple[str | None, str | None]:
        """A network of ours (`cidr`) or an existing one (`existing`): exactly one of them."""
        if ("cidr" in data) == ("existing" in data):
            raise self.fail(f"{key}.cidr", "give cidr (a network to make) or existing (a "
                                           "network of the cloud to use), one of them")
        if "existing" in data:
            return None, self.text(data["existing"], f"{key}.existing")
        return self.cidr(data["cidr"], f"{key}.cidr"), None


    def flag(self, data: dict[str, Any], key: str, name: str, default: bool) -> bool:
        value = data.get(name, default)
        if not isinstance(value, bool):
            raise self.fail(f"{key}.{name}", "true or false")
        return value


    def zone(self, data: dict[str, Any], where: str) -> str | None:
        zone = data.get("availability_zone")
        return self.text(zone, f"{where}.availability_zone") if zone is not None else None
