"""Waiting for processes we started but are no longer the parent of (daemons, services).

Once the command that started them has exited, they are not our children: when they end they
stay zombies until this machine's init reaps them, sometimes seconds later. A zombie has ended
all the same; psutil's wait_procs would count it as alive.
"""

from __future__ import annotations

import time

import psutil


def alive(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running() and process.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_gone(processes: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    """Wait until the processes have ended; those still alive after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        still = [process for process in processes if alive(process)]
        if not still or time.monotonic() > deadline:
            return still
        time.sleep(0.02)
