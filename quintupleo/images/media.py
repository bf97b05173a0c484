"""Virtual media: fetch a CD image a client named by URL, bounded in size, into a local file.

The URL is the client's (often Ironic's HTTP server); it may carry a token, so it is never
logged or stored in the cloud: errors name only its scheme and host.
"""

from __future__ import annotations

import asyncio
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp

from quintupleo.errors import BackendError, InvalidRequest

CHUNK = 1024 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=1800, sock_connect=15, sock_read=60)
# Disk writes of downloads, off the event loop; two at once are enough to keep up with a network
# that one process shares among all of its nodes.
_WRITER = ThreadPoolExecutor(max_workers=2, thread_name_prefix="media")


def where(url: str) -> str:
    """The part of a URL safe to show: scheme and host."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}"


def check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("virtual media: the image URL must be http:// or https:// with a "
                             "host")


async def fetch(url: str, limit: int, directory: Path | None = None) -> Path:
    """Download `url` into a new file (the caller deletes it); refuse more than `limit` bytes."""
    check_url(url)
    handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - kept past this function
        prefix="qo-media-", suffix=".iso", dir=directory, delete=False)
    path = Path(handle.name)
    try:
        with handle:
            async with aiohttp.ClientSession(timeout=TIMEOUT) as session, \
                    session.get(url) as response:
                if response.status != 200:
                    raise BackendError(f"virtual media: {where(url)} answered HTTP "
                                       f"{response.status}")
                if (response.content_length or 0) > limit:
                    raise BackendError(f"virtual media: the image is {response.content_length} "
                                       f"bytes, more than the limit of {limit}")
                size = 0
                loop = asyncio.get_running_loop()
                async for chunk in response.content.iter_chunked(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise BackendError(f"virtual media: the image is larger than the "
                                           f"limit of {limit} bytes")
                    await loop.run_in_executor(_WRITER, handle.write, chunk)
        if size == 0:
            raise BackendError(f"virtual media: {where(url)} sent an empty image")
        return path
    except aiohttp.ClientError as exc:
        path.unlink(missing_ok=True)
        raise BackendError(f"virtual media: cannot fetch from {where(url)}: "
                           f"{type(exc).__name__}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
