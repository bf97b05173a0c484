"""One node's truth: observed power, pending actions and the boot override.

Reads are answered from the model at once. Actions are queued and run one at a time per node
by a worker task (identical consecutive requests are coalesced); the model takes the action's
target state as soon as it is accepted, and ignores observations that do not yet show it, so a
client never sees the BMC contradict what it just did. Observations arrive in batches from the
Refresher, never from a client's poll.

A *staged* boot (the backend reaches it through steps, e.g. a rescue into an iPXE image) is the
exception: the node reads as on only once the backend shows it up, booting the chosen device;
meanwhile other actions are refused as busy (IPMI 0xC0, Redfish 503 with Retry-After). An action
whose backend task ends anywhere but at its target is reported, and the model takes what the
backend shows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable

from quintupleo.backends.base import Backend
from quintupleo.bmc.console import Deliver, NodeConsole
from quintupleo.bmc.events import EventBus
from quintupleo.bmc.platform import Platform
from quintupleo.bmc.store import BootStore
from quintupleo.errors import (
    BackendError,
    BmcError,
    ConsoleInUse,
    NodeBusy,
    NotInPresentState,
    NotSupported,
)
from quintupleo.images.media import check_url
from quintupleo.model import (
    BootDevice,
    BootOverride,
    NodeInfo,
    Observation,
    PowerAction,
    PowerState,
)

log = logging.getLogger(__name__)

MAX_QUEUED = 8            # more pending actions than this on one node: "busy" (0xC0 / 503)
RETRY_DELAY = 1.0         # between attempts while the backend says the node is busy
ACTION_TIMEOUT = 300.0    # give up an action (and say so in the log) after this long


class NodeController:
    def __init__(self, info: NodeInfo, backend: Backend, store: BootStore,
                 override: BootOverride | None = None,
                 on_action: Callable[[bool], None] = lambda urgent: None,
                 events: EventBus | None = None) -> None:
        self.info = info
        self.backend = backend
        self.store = store
        self.key = f"{backend.name}:{info.id}"
        self._power: PowerState | None = None         # None until the first observation
        self._observed: PowerState | None = None       # what the backend last showed
        self.override = override or BootOverride()
        self.missing = False                           # the backend no longer lists the node
        self.media: str | None = None                  # the inserted virtual CD (backend ref)
        self.media_url: str | None = None
        self.transition: PowerState | None = None      # target of a staged action under way
        self.fault: str | None = None                  # the backend says the node failed
        self._queue: deque[PowerAction] = deque()
        self._worker: asyncio.Task[None] | None = None
        self._settled = asyncio.Event()
        self._awaiting: PowerState | None = None       # target an in-flight action waits for
        self._issued_at = 0.0                          # when the last backend call returned
        self._on_action = on_action                    # asks the refresher to look soon
        self._console: NodeConsole | None = None       # the console's one client
        self.events = events or EventBus()              # what listeners hear of the node
        self.platform = Platform(info.name, self.key, store,   # BIOS, secure boot, indicator
                                 secure_boot=info.hardware.secure_boot,
                                 bios_version=info.hardware.firmware,
                                 disk_bytes=info.local_gb << 30,
                                 boot_mode=info.hardware.boot_mode,
                                 fixed_secure_boot=info.hardware.secure_boot_fixed)

    @property
    def power(self) -> PowerState | None:
        return self._power

    @power.setter
    def power(self, value: PowerState | None) -> None:
        """Every change of the model's power state is an event in the node's log (the SEL)."""
        if value is not None and self._power is not None and value is not self._power:
            self.platform.log_event(f"power {value.value}")
            self.events.publish(self.info.id, f"power {value.value}")
        self._power = value

    # ---- reads -------------------------------------------------------------------------
    def power_state(self) -> PowerState:
        if self.missing:
            raise BackendError(f"node {self.info.name} is gone from its backend")
        if self.power is None:
            raise NodeBusy(f"node {self.info.name}: power state not known yet")
        return self.power

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    @property
    def queued(self) -> int:
        """Actions accepted and not yet done."""
        return len(self._queue)

    # ---- what the node can do: the front ends ask here, never the backend -------------
    @property
    def kind(self) -> str:
        """What the node is (the backend's name): `openstack`, `qemu`, `fake`."""
        return self.backend.name

    def supports(self, action: PowerAction) -> bool:
        return self.backend.supports(action)

    @property
    def boot_devices(self) -> frozenset[BootDevice]:
        return self.backend.boot_devices

    @property
    def has_media(self) -> bool:
        return self.backend.has_media

    @property
    def has_secure_boot(self) -> bool:
        return self.info.hardware.secure_boot

    @property
    def has_console(self) -> bool:
        return self.backend.has_console

    # ---- serial console: one client at a time --------------------------------------------
    def attach_console(self, client: str, deliver: Deliver, chunk: int = 4096) -> NodeConsole:
        """Give the node's console to `client` (its output to `deliver`, once started) until
        it is closed; ConsoleInUse while another client has it."""
        if not self.has_console:
            raise NotSupported(f"node {self.info.name} has no serial console")
        if self._console is not None:
            raise ConsoleInUse(f"node {self.info.name}: its serial console is in use "
                               f"({self._console.client})")
        self._console = NodeConsole(
            self.info.name, client, lambda: self.backend.open_console(self.info.id), deliver,
            chunk, self._console_closed)
        self.backend.want_console(self.info.id, True)
        return self._console

    def _console_closed(self, console: NodeConsole) -> None:
        if self._console is console:
            self._console = None
            self.backend.want_console(self.info.id, False)

    # ---- actions -----------------------------------------------------------------------
    def request(self, action: PowerAction, source: str = "") -> None:
        """Accept a power action (or refuse it at once with a BmcError); it runs in background."""
        current = self.power_state()
        if not self.supports(action):
            raise NotSupported(f"{self.backend.name} nodes have no {action.value}")
        if self._queue and self._queue[-1] is action:
            return   # coalesce a repeat (clients retry)
        if self.transition is not None:
            raise NodeBusy(f"node {self.info.name} is still booting the chosen device; "
                           "try again shortly", retry_after=5)
        if action in (PowerAction.RESET, PowerAction.SOFT_RESET, PowerAction.CYCLE,
                      PowerAction.DIAG_INTERRUPT) and current is PowerState.OFF:
            raise NotInPresentState(f"node {self.info.name} is off: no {action.value}")
        if not self._queue and action.target is current and not action.boots:
            return   # off while off: nothing to do, as on real hardware
        if not self._queue and action is PowerAction.ON and current is PowerState.ON:
            return   # on while on
        if len(self._queue) >= MAX_QUEUED:
            raise NodeBusy(f"node {self.info.name} has {len(self._queue)} actions pending")
        log.info("node %s: %s requested%s", self.info.name, action.value,
                 f" by {source}" if source else "")
        self._queue.append(action)
        if action.target is not None and not self.backend.staged(action, self.override):
            self.power = action.target
        if self._awaiting is not None:
            self._on_action(True)   # queued behind a transition: look now, not in 10 s
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())

    def set_boot_override(self, override: BootOverride) -> None:
        if override.active and override.device not in self.boot_devices:
            raise NotSupported(f"node {self.info.name} cannot boot {override.device.value}")
        if override != self.override:
            self.override = override
            self.store.save(self.key, override)
            what = (f"{override.device.value}{' persistent' if override.persistent else ' once'}"
                    f" ({override.mode.value})")
            log.info("node %s: boot override %s", self.info.name, what)
            self.events.publish(self.info.id, "boot override", what)

    async def insert_media(self, url: str) -> None:
        """Fetch and attach a virtual CD (replacing one already inserted)."""
        if not self.has_media:
            raise NotSupported(f"node {self.info.name} has no virtual media ({self.kind} "
                               "nodes have none, or not with these settings)")
        check_url(url)
        media = await self.backend.insert_media(self.info.id, url)
        old, self.media, self.media_url = self.media, media, url
        # saved before the old CD goes: a kill in between leaves a stale file to prune at the
        # next start, never a saved CD whose file is gone
        self.store.save_media(self.key, url, media)
        if old is not None and old != media:
            await self.backend.eject_media(self.info.id, old)
        log.info("node %s: virtual media inserted (%s)", self.info.name, media)

    async def eject_media(self) -> None:
        if self.media is not None:
            await self.backend.eject_media(self.info.id, self.media)
            log.info("node %s: virtual media ejected", self.info.name)
        self.media = self.media_url = None
        self.store.save_media(self.key, None, None)

    async def _work(self) -> None:
        while self._queue:
            try:
                await self._execute(self._queue[0])
            except BmcError as exc:
                log.error("node %s: %s failed: %s", self.info.name, self._queue[0].value, exc)
                self._failed()
            except Exception:
                log.exception("node %s: %s failed", self.info.name, self._queue[0].value)
                self._failed()
            finally:
                self._queue.popleft()
                self._awaiting = self.transition = None

    def _failed(self) -> None:
        """An action that never reached the backend: the model goes back to what the backend
        last showed (the next action queued, if any, keeps its own target)."""
        if len(self._queue) <= 1 and self._observed is not None:
            self.power = self._observed

    async def _execute(self, action: PowerAction) -> None:
        deadline = time.monotonic() + ACTION_TIMEOUT
        retrying = False
        staged = self.backend.staged(action, self.override)
        while True:
            try:
                if staged:
                    self.transition = action.target
                await self.backend.power(self.info.id, action, self.override, self.media,
                                         self.platform.machine_settings())
                break
            except NodeBusy as exc:
                if time.monotonic() > deadline:
                    raise
                if not retrying:
                    log.info("node %s: %s waits: %s", self.info.name, action.value, exc)
                    retrying = True
                self._on_action(False)
                await asyncio.sleep(RETRY_DELAY)
        self._issued_at = time.monotonic()
        if action.boots:
            self.platform.booted()
        if action.boots and self.override.active and not self.override.persistent:
            # The one-time override was handed to this boot: it is consumed.
            self.set_boot_override(BootOverride(BootDevice.NONE, False, self.override.mode))
        if action.target is None:
            return
        self._awaiting = action.target
        self._settled.clear()
        self._on_action(False)
        try:
            await asyncio.wait_for(self._settled.wait(), max(1.0, deadline - time.monotonic()))
        except TimeoutError:
            log.warning("node %s: %s sent, but the node did not reach %s in time",
                        self.info.name, action.value, action.target.value)

    # ---- observations ------------------------------------------------------------------
    def observe(self, observation: Observation | None, started_at: float) -> None:
        """Take one batch reading; `started_at` is when the batch call began (monotonic)."""
        if observation is None:
            if not self.missing:
                log.error("node %s: no longer listed by %s", self.info.name, self.backend.name)
            self.missing = True
            return
        self.missing = False
        if started_at < self._issued_at:
            return   # read before our last call took effect: stale
        self._observed = observation.power
        if observation.fault != self.fault:
            if observation.fault:
                log.error("node %s: %s reports a failure: %s", self.info.name,
                          self.backend.name, observation.fault)
            self.fault = observation.fault
        if self._awaiting is not None:
            if observation.busy:
                return
            if observation.power is not self._awaiting:
                log.error("node %s: the backend's task ended with the node %s, not %s",
                          self.info.name, observation.power.value, self._awaiting.value)
            if len(self._queue) <= 1:   # else the next queued action's target stands
                self.power = observation.power
            self._settled.set()
            return
        if self._queue:
            return   # an action is about to run: keep showing its target
        if self.power is not None and self.power is not observation.power:
            log.info("node %s: power %s (changed outside the BMC)", self.info.name,
                     observation.power.value)
        self.power = observation.power

    @property
    def wants_fast_refresh(self) -> bool:
        return self._awaiting is not None or bool(self._queue)


class Refresher:
    """One batch observation per interval for all nodes of a backend (faster while acting)."""

    def __init__(self, backend: Backend, controllers: list[NodeController],
                 interval: float = 10.0, fast_interval: float = 0.5) -> None:
        self.backend = backend
        self.controllers = controllers
        self.interval = interval
        self.fast_interval = fast_interval
        self.calls = 0
        self.durations: Callable[[float], None] = lambda seconds: None   # each refresh's time
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._failing = False

    def poke(self, urgent: bool = False) -> None:
        """Look again soon: an action just started (wait a moment, so that one read sees the
        actions started together), or one waits on a transition (look at once)."""
        if urgent:
            self._urgent.set()
        self._wake.set()

    async def refresh(self) -> None:
        started = time.monotonic()
        self.calls += 1
        try:
            observations = await self.backend.observe()
        except BmcError as exc:
            if not self._failing:
                log.error("%s: cannot read node states: %s", self.backend.name, exc)
            self._failing = True
            return
        except Exception:   # a bug in a backend must not end the loop: every node would freeze
            if not self._failing:
                log.exception("%s: reading node states failed", self.backend.name)
            self._failing = True
            return
        self.durations(time.monotonic() - started)
        if self._failing:
            log.info("%s: node states readable again", self.backend.name)
        self._failing = False
        for controller in self.controllers:
            controller.observe(observations.get(controller.info.id), started)

    async def run(self) -> None:
        while True:
            self._wake.clear()     # before the read: a poke during it is not lost
            await self.refresh()
            fast = any(c.wants_fast_refresh for c in self.controllers)
            try:
                await asyncio.wait_for(self._wake.wait(),
                                       self.fast_interval if fast else self.interval)
            except TimeoutError:
                continue
            with contextlib.suppress(TimeoutError):   # the moment is cut short when urgent
                await asyncio.wait_for(self._urgent.wait(),
                                       min(self.fast_interval, self.backend.settle_poll))
            self._urgent.clear()
