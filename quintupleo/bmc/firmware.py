"""Firmware updates, as a BMC's update service runs them (Redfish `SimpleUpdate`): the BMC
fetches the image from the URI it is given, writes it, and reports progress as a task.

A BMC image runs at once (the BMC restarts into it: its FirmwareVersion changes when the task
completes). A BIOS image is written to the flash and runs from the node's next boot: the task
stays Running until then and completes at that boot, as on servers that schedule the BIOS
flash for the next reset (Ironic reboots the node when such a task starts).

A real BMC reads the component and version out of the vendor's package. A virtual node has no
such format, so the image's file name says them: `bios-2.1.0.bin`, `BMC_1.4.img` — the
component (`bios` or `bmc`), a `-` or `_`, the version, and an optional extension. The content
is fetched (so a wrong URI fails as it would on hardware) and otherwise not interpreted.
"""

from __future__ import annotations

import asyncio
import logging
import re
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from quintupleo.bmc.platform import Platform
from quintupleo.bmc.tasks import Task, TaskList
from quintupleo.errors import InvalidSetting

log = logging.getLogger(__name__)

IMAGE_NAME = re.compile(r"(?P<component>bios|bmc)[-_](?P<version>[0-9A-Za-z][0-9A-Za-z.+~_-]*?)"
                        r"(?:\.(?:bin|img|rom|fd|cap|pkg|exe|zip|tar|gz))*", re.IGNORECASE)
MAX_IMAGE = 256 << 20        # bytes: larger images are refused, as a BMC's staging area is small
FETCH_TIMEOUT = 300          # seconds for the whole download


def shown(uri: str) -> str:
    """The URI as messages and logs may show it: without a user or password."""
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def image_target(uri: str) -> tuple[str, str]:
    """(component, version) an image's URI names; InvalidSetting when it names none."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidSetting(f"ImageURI {shown(uri)!r} is not an http or https URI")
    name = parts.path.rsplit("/", 1)[-1]
    match = IMAGE_NAME.fullmatch(name)
    if match is None:
        raise InvalidSetting(f"the image {name!r} names no component: this BMC takes images "
                             "named bios-VERSION or bmc-VERSION (e.g. bios-2.1.0.bin)")
    return match["component"].lower(), match["version"]


class FetchError(Exception):
    pass


async def fetch(uri: str) -> int:
    """Download the image (and drop it): its size, or FetchError saying why not."""
    size = 0
    try:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(uri) as response:
            if response.status != 200:
                raise FetchError(f"fetching {shown(uri)} failed: HTTP {response.status}")
            async for chunk in response.content.iter_chunked(1 << 16):
                size += len(chunk)
                if size > MAX_IMAGE:
                    raise FetchError(f"the image at {shown(uri)} is larger than "
                                     f"{MAX_IMAGE >> 20} MiB")
    except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
        raise FetchError(f"fetching {shown(uri)} failed: "
                         f"{exc.__class__.__name__} {exc}".rstrip()) from None
    if size == 0:
        raise FetchError(f"the image at {shown(uri)} is empty")
    return size


class Updates:
    """The update service's work: one download at a time per node, each a task."""

    def __init__(self, tasks: TaskList) -> None:
        self.tasks = tasks
        self._running: set[asyncio.Task[None]] = set()

    def start(self, node: str, platform: Platform, uri: str) -> Task:
        component, version = image_target(uri)   # a bad name is the request's error: 400
        task = self.tasks.start(f"{component.upper()} firmware {version} for {platform.node}",
                                node)
        task.progress(0, f"Fetching {shown(uri)}")
        job = asyncio.get_running_loop().create_task(
            self._run(task, platform, component, version, uri))
        self._running.add(job)
        job.add_done_callback(self._running.discard)
        return task

    async def _run(self, task: Task, platform: Platform, component: str, version: str,
                   uri: str) -> None:
        try:
            size = await fetch(uri)
        except FetchError as exc:
            task.fail(str(exc))
            log.warning("node %s: firmware update failed: %s", platform.node, exc)
            return
        task.progress(50, f"Image of {size} bytes written")
        if component == "bmc":
            platform.flash_bmc(version)
            task.complete(f"BMC firmware {version} runs")
            return
        platform.stage_bios(version)
        task.progress(60, "The BIOS image runs from the next reset of the system")

        def at_boot() -> None:
            if platform.bios_version == version:
                task.complete(f"BIOS firmware {version} runs")
            else:
                task.fail(f"BIOS firmware {version} was replaced by a later image before a "
                          "reset ran it")
        platform.on_boot.append(at_boot)

    async def close(self) -> None:
        for job in list(self._running):
            job.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
