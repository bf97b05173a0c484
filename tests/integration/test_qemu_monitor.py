"""The QMP connection a lab node's BMC keeps: run state read on connecting and followed through
QEMU's own events, commands shared on one connection (QEMU serves one QMP client)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import pytest

from quintupleo.backends.qemu.monitor import Monitor
from quintupleo.errors import BackendError

pytestmark = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None,
                                reason="qemu-system-x86 is not installed")


async def wait_status(monitor: Monitor, wanted: str) -> None:
    async with asyncio.timeout(5):
        while monitor.status != wanted:
            await asyncio.sleep(0.01)


def test_the_run_state_follows_qemus_events(tmp_path):
    socket = tmp_path / "qmp.sock"
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "none", "-nodefaults",
                             "-display", "none", "-S", "-qmp",
                             f"unix:{socket},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def scenario() -> None:
        while not socket.exists():
            await asyncio.sleep(0.01)
        monitor = Monitor("n", socket)
        await monitor.connect()
        assert monitor.status == "prelaunch"          # -S: not started yet
        await monitor.execute("cont")
        await wait_status(monitor, "running")         # RESUME event
        await asyncio.gather(monitor.execute("stop"), monitor.execute("query-name"))
        await wait_status(monitor, "paused")          # STOP event
        with pytest.raises(BackendError, match="no-such-command"):
            await monitor.execute("no-such-command")
        await monitor.execute("quit")
        await wait_status(monitor, "shutdown")        # SHUTDOWN event, then QEMU ends
        await monitor.close()

    try:
        asyncio.run(scenario())
        assert qemu.wait(10) == 0
    finally:
        qemu.kill()


def test_a_qemu_that_ends_on_its_own_closes_cleanly(tmp_path):
    """A node's QEMU killed outside the BMC: its connection is gone, closing it is no error."""
    socket = tmp_path / "qmp.sock"
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "none", "-nodefaults",
                             "-display", "none", "-S", "-qmp",
                             f"unix:{socket},server=on,wait=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    async def scenario() -> None:
        while not socket.exists():
            await asyncio.sleep(0.01)
        monitor = Monitor("n", socket)
        await monitor.connect()
        qemu.kill()
        qemu.wait(10)
        async with asyncio.timeout(5):
            while monitor.connected:
                await asyncio.sleep(0.01)
        await monitor.close()

    try:
        asyncio.run(scenario())
    finally:
        qemu.kill()
