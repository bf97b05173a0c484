"""The local cloud's life cycle: up (install, bootstrap, start), down, status and reset."""

from __future__ import annotations

import shutil
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from keystoneauth1.exceptions import ClientException
from openstack.exceptions import SDKException

from quintupleo.devcloud import (
    bootstrap,
    clouds_yaml,
    configs,
    dataplane,
    hypervisor,
    install,
    processes,
    readiness,
)
from quintupleo.devcloud.layout import Layout, State
from quintupleo.devcloud.services import Service, all_services
from quintupleo.errors import DevcloudError

Progress = Callable[[str], None]
START_TIMEOUT = 180.0  # seconds for one wave of services to answer


def _quiet(_: str) -> None:
    pass


@dataclass
class ServiceStatus:
    name: str
    state: str
    pid: int | None
    port: int | None
    rss: int | None
    log: str


class Devcloud:
    def __init__(self, home: Path, progress: Progress = _quiet) -> None:
        self.layout = Layout(home)
        self.progress = progress
        self.warnings: list[str] = []

    # -- life cycle -------------------------------------------------------------------------

    def up(self, port_base: int | None = None, vms: bool | None = None) -> State:
        """Install what is missing, bootstrap a new cloud, start what is not running.

        vms: run the real host too (True), leave it out (False), or run it where this machine
        can (None: it needs root; a warning says why it is left out).
        """
        state = self._state(port_base)
        step = self._step
        reason = hypervisor.why_not() if vms is not False else None
        if reason and vms:
            raise DevcloudError(f"cannot run real VMs: {reason}",
                                hint="Run as root, or leave the real host out with --no-vms.")
        if reason:
            self.warnings.append(f"real VMs left out: {reason}; the fake host runs alone")
        if state.vms != (vms is not False and reason is None):
            self._stop_vm_host()
        state.vms = vms is not False and reason is None
        state.cloud_name = clouds_yaml.claim_name(self.layout, state)
        state.save(self.layout)
        with step("Debian packages"):
            install.install_apt_packages(self.layout, hypervisor.APT_PACKAGES if state.vms
                                         else ())
        with step("services' venv"):
            install.install_venv(self.layout, libvirt=state.vms)
        if state.vms:
            hypervisor.ensure_account()
        if not state.bootstrapped:
            self._stop_all()
            with step("databases"):
                shutil.rmtree(self.layout.data, ignore_errors=True)
                configs.write_all(self.layout, state)
                bootstrap.init_databases(self.layout, state)
        else:
            self._check_data()
            # A newer QuintupleO may configure the services differently (running services
            # keep what they read until `down`); local edits survive otherwise.
            configs.write_all(self.layout, state, only_if_changed=True)
        try:
            if state.vms:
                hypervisor.prepare(self.layout)
            self._start(state)
            if not state.bootstrapped:
                with step("flavors and image"):
                    conn = bootstrap.admin_connection(state)
                    bootstrap.create_flavors(conn)
                    bootstrap.upload_image(conn)
                    bootstrap.ensure_public_network(conn)
                    bootstrap.ensure_zones(conn, state.vms)
                with step("golden copy for reset"):
                    bootstrap.snapshot(self.layout, self.layout.golden)
                state.bootstrapped = True
                state.save(self.layout)
            else:
                conn = bootstrap.admin_connection(state)
                bootstrap.ensure_public_network(conn)
                bootstrap.ensure_zones(conn, state.vms)
                bootstrap.upload_image(conn)
        except (SDKException, ClientException) as exc:
            self._stop_all()
            raise DevcloudError(f"bootstrap through the OpenStack APIs failed: {exc}",
                                hint=f"The services' logs are in {self.layout.logs}.") from exc
        except BaseException:
            self._stop_all()
            raise
        with step("clouds.yaml entries"):
            clouds_yaml.merge(state)
        return state

    def _stop_vm_host(self) -> None:
        """Switching the real host on or off: its services stop, nova-compute reads it anew."""
        state = State.load(self.layout) or State()
        for service in all_services(self.layout, state):
            if service.vms:
                processes.stop(self.layout, service.name)
        hypervisor.stop_qemus(self.layout)

    def down(self) -> list[str]:
        """Stop every process we started, power off the real host's VMs and remove its taps,
        bridges and namespaces; returns the names of the services that were running."""
        return self._stop_all()

    def reset(self) -> State:
        """Back to the clean bootstrapped state: restore the golden copy and start again."""
        state = self._state(None)
        self._stop_all()
        golden = self.layout.golden
        with self._step("restore the golden copy"):
            shutil.rmtree(self.layout.data, ignore_errors=True)
            # libvirt's domains belong to the servers of the data being thrown away.
            shutil.rmtree(self.layout.libvirt, ignore_errors=True)
            shutil.rmtree(self.layout.etc / "libvirt" / "qemu", ignore_errors=True)
            if state.bootstrapped and golden.is_dir():
                shutil.copytree(golden, self.layout.data)
                (self.layout.data / "rabbitmq").mkdir(exist_ok=True)
            else:
                state.bootstrapped = False
                state.save(self.layout)
            if (self.layout.venv / install.MARKER).exists():
                configs.write_all(self.layout, state)
        return self.up()

    def status(self) -> list[ServiceStatus]:
        state = State.load(self.layout) or State()
        rows = []
        for service in all_services(self.layout, state):
            current = processes.running(self.layout, service.name)
            if service.vms and not state.vms and current is None:
                continue
            rows.append(ServiceStatus(
                name=service.name,
                state="running" if current else "stopped",
                pid=current.pid if current else None,
                port=state.port(service.port) if service.port else None,
                rss=current.rss if current else None,
                log=str(self.layout.log(service.name)),
            ))
        return rows

    def find_network(self, name_or_id: str) -> Any:
        """A network of any project, by name or ID, through the admin API."""
        state = State.load(self.layout)
        if state is None or not state.bootstrapped:
            raise DevcloudError("this devcloud was never brought up",
                                hint="Run `quintupleo devcloud up` first.")
        try:
            network = bootstrap.admin_connection(state).network.find_network(name_or_id)
        except (SDKException, ClientException) as exc:
            raise DevcloudError(f"cannot look up network {name_or_id}: {exc}",
                                hint="Is the devcloud up? `quintupleo devcloud status`") from None
        if network is None:
            raise DevcloudError(f"no network {name_or_id} in the devcloud")
        return network

    # -- internals --------------------------------------------------------------------------

    def _state(self, port_base: int | None) -> State:
        state = State.load(self.layout)
        if state is None:
            state = State() if port_base is None else State(port_base=port_base)
            state.save(self.layout)
        elif port_base is not None and port_base != state.port_base:
            raise DevcloudError(
                f"this devcloud was set up on port base {state.port_base}, not {port_base}",
                hint="Leave --port-base out, or use another --home.")
        return state

    def _step(self, what: str) -> _Step:
        return _Step(what, self.progress)

    def _check_data(self) -> None:
        """A corrupt data dir is named, not started on."""
        for name in bootstrap.DATABASES:
            path = self.layout.db(name)
            problem = None
            if not path.exists():
                problem = "is missing"
            else:
                try:
                    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
                        result = db.execute("PRAGMA quick_check").fetchone()[0]
                    if result != "ok":
                        problem = f"fails SQLite's check ({result})"
                except sqlite3.DatabaseError as exc:
                    problem = f"cannot be read ({exc})"
            if problem:
                raise DevcloudError(
                    f"the data dir is corrupt: {path} {problem}",
                    hint="Run `quintupleo devcloud reset` to restore the clean bootstrapped state.")

    def _start(self, state: State) -> None:
        services = [s for s in all_services(self.layout, state) if state.vms or not s.vms]
        self._check_executables(services)
        self._check_ports(state, services)
        for wave in sorted({s.wave for s in services}):
            members = [s for s in services if s.wave == wave]
            names = ", ".join(s.name for s in members)
            with self._step(f"start {names}"):
                offsets = self._launch(members)
                self._wait(state, members, offsets)
                for name in readiness.COMPUTE_HOSTS:
                    if name in offsets:
                        self._wait_compute(state, members, offsets, name)
            if "keystone" in offsets and not state.bootstrapped:
                # The other services authenticate as their own users from their first start.
                with self._step("identities and catalog"):
                    bootstrap.create_identities(bootstrap.admin_connection(state), state)

    def _check_executables(self, services: list[Service]) -> None:
        for service in services:
            program = service.argv[0]
            if shutil.which(program, path=service.env.get("PATH")) is None:
                package = "rabbitmq-server" if service.name in ("epmd", "rabbitmq") else None
                hint = (f"It comes with Debian's {package}: apt-get install {package}" if package
                        else "Run `quintupleo devcloud up` again to repair the services' venv.")
                raise DevcloudError(f"cannot run {program}: not found", service=service.name,
                                    log=self.layout.log(service.name), hint=hint)

    def _check_ports(self, state: State, services: list[Service]) -> None:
        for service in services:
            if service.port is None or processes.running(self.layout, service.name):
                continue
            port = state.port(service.port)
            if processes.port_in_use(port):
                raise DevcloudError(
                    f"port 127.0.0.1:{port} is already in use by {processes.port_owner(port)}",
                    service=service.name, log=self.layout.log(service.name),
                    hint="Stop that process, or choose another --port-base with a new --home.")

    def _launch(self, members: list[Service]) -> dict[str, int | None]:
        """Start those not yet running; returns each new one's log offset (None: was running)."""
        offsets: dict[str, int | None] = {}
        for service in members:
            if processes.running(self.layout, service.name):
                offsets[service.name] = None
                continue
            log = self.layout.log(service.name)
            offsets[service.name] = log.stat().st_size if log.exists() else 0
            if service.cwd:
                service.cwd.mkdir(parents=True, exist_ok=True)
            argv = service.argv
            if service.joins:
                host = processes.running(self.layout, service.joins)
                if host is None:
                    raise DevcloudError(f"{service.joins} is not running", service=service.name,
                                        log=self.layout.log(service.joins))
                argv = hypervisor.join_namespaces(host.pid, argv)
            processes.spawn(self.layout, service.name, argv, service.env, service.cwd)
        return offsets

    def _wait(self, state: State, members: list[Service], offsets: dict[str, int | None]) -> None:
        pending = list(members)
        deadline = time.monotonic() + START_TIMEOUT
        while pending:
            for service in list(pending):
                self._ensure_alive(service, offsets, state)
                if readiness.service_answers(self.layout, state, service,
                                             offsets[service.name] or 0):
                    pending.remove(service)
            if pending and time.monotonic() > deadline:
                service = pending[0]
                raise DevcloudError(
                    f"did not answer within {START_TIMEOUT:.0f} s", service=service.name,
                    log=self.layout.log(service.name))
            if pending:
                time.sleep(0.2)

    def _wait_compute(self, state: State, members: list[Service],
                      offsets: dict[str, int | None], name: str) -> None:
        compute = processes.running(self.layout, name)
        self._ensure_alive(next(s for s in members if s.name == name), offsets, state)
        assert compute is not None
        host = readiness.COMPUTE_HOSTS[name]
        # Nova stores whole seconds: a heartbeat in the second the process started counts.
        launched_at = datetime.fromtimestamp(int(compute.process.create_time()), UTC)
        conn = bootstrap.admin_connection(state)
        deadline = time.monotonic() + START_TIMEOUT
        log, since = self.layout.log(name), offsets[name] or 0
        while (missing := readiness.compute_ready(self.layout, conn, host, launched_at)):
            for service in members:
                self._ensure_alive(service, offsets, state)
            # A compute whose start failed may linger without ever reporting: say why now.
            if (cause := processes.first_error(log, since)) and " CRITICAL " in cause:
                raise DevcloudError(f"failed to start: {_redact(cause, state)}", service=name,
                                    log=log)
            if time.monotonic() > deadline:
                raise DevcloudError(f"not ready: {missing}", service=name,
                                    log=self.layout.log(name))
            time.sleep(0.5)

    def _ensure_alive(self, service: Service, offsets: dict[str, int | None],
                      state: State) -> None:
        if processes.running(self.layout, service.name):
            return
        log, since = self.layout.log(service.name), offsets[service.name] or 0
        cause = processes.first_error(log, since)
        tail = processes.log_tail(log, since=since)
        raise DevcloudError(
            "exited while starting" + (f": {_redact(cause, state)}" if cause else "")
            + "; last lines of its log:\n" + _redact(tail, state),
            service=service.name, log=log)

    def _stop_all(self) -> list[str]:
        state = State.load(self.layout) or State()
        names = [s.name for s in all_services(self.layout, state)]
        with ThreadPoolExecutor(max_workers=len(names)) as pool:
            stopped = list(pool.map(lambda name: processes.stop(self.layout, name), names))
        # What outlives the services: the VMs, their taps, the bridges and namespaces.
        hypervisor.stop_qemus(self.layout)
        dataplane.remove_all(self.layout, state)
        hypervisor.clear(self.layout)
        return [name for name, was in zip(names, stopped, strict=True) if was]


def _redact(text: str, state: State) -> str:
    for secret in (state.admin_password, state.member_password, state.service_password,
                   state.rabbit_password):
        text = text.replace(secret, "***")
    return text


class _Step:
    """Reports a named step and its duration through the progress callback."""

    def __init__(self, what: str, progress: Progress) -> None:
        self.what, self.progress = what, progress

    def __enter__(self) -> _Step:
        self.started = time.monotonic()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        if exc_type is None:
            self.progress(f"{self.what} ({time.monotonic() - self.started:.1f} s)")
