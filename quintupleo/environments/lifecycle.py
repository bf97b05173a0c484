"""An environment's life on this machine: create (again), delete, audit, with its journal.

The CLI, tests and benches go through here. A journal is opened for one step and closed after
it; its `state` says where the last step got to (creating, created, deleting, deleted).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quintupleo.backends.openstack.driver import connect as connect_cloud
from quintupleo.environments import apply, store
from quintupleo.environments.bmc_host import BmcHost
from quintupleo.environments.cloud import CloudOps
from quintupleo.environments.hosts import RELAY_IMAGE
from quintupleo.environments.journal import Journal
from quintupleo.environments.plan import Planned, changed, plan
from quintupleo.environments.preflight import preflight
from quintupleo.environments.reader import SpecError
from quintupleo.environments.spec import EnvironmentSpec, load
from quintupleo.errors import QuintupleOError

Say = Callable[[str], None]   # a line for the user (which iPXE images were uploaded)


@dataclass(frozen=True)
class Outcome:
    spec: EnvironmentSpec
    resources: int           # created or found, all of the plan (create); deleted (delete)
    calls: int               # cloud API calls made
    seconds: float
    checks: int = 0          # and those of the pre-flight
    nodes: int = 0           # bare-metal nodes, powered off
    booted: int = 0          # servers running from their image (`boot: image` roles)


def connect(spec: EnvironmentSpec, journal: Journal | None = None,
            source: str | None = None) -> CloudOps:
    """The cloud calls for `spec`; with the journal, also what a BMC host needs. `source`: the
    spec's file, to name its `cloud` key when the entry is wrong."""
    try:
        conn = connect_cloud(spec.cloud)
    except Exception as exc:   # openstacksdk raises several kinds for a bad clouds.yaml entry
        if source is not None:
            raise SpecError(source, "cloud", f"{spec.cloud!r}: {exc}") from None
        raise QuintupleOError(f"cloud {spec.cloud!r}: {exc}") from None
    host = None
    if journal is not None and spec.bmc.host is not None:
        host = BmcHost(spec, journal, store.bmc_password(journal))
    return CloudOps(conn, spec, host)


@contextmanager
def opened(name: str, must_exist: bool = True) -> Iterator[Journal]:
    journal = store.open_journal(name, must_exist=must_exist)
    try:
        yield journal
    finally:
        journal.close()


@dataclass(frozen=True)
class Prepared:
    """What a create would do: the spec, its plan, what is still to make, what to replace."""

    spec: EnvironmentSpec
    planned: list[Planned]
    to_make: list[Planned]
    replaced: list[str]          # made by a create that stopped, made otherwise by this spec
    before: list[Planned] | None  # that create's plan (None: the same spec, or none yet)
    checks: int = 0              # API calls the pre-flight made


def prepare(spec_file: Path) -> tuple[Prepared, CloudOps]:
    """Check the spec against the cloud (and against what an earlier create made) before
    anything is made; raise at the first problem, naming the spec's key."""
    spec = load(spec_file)
    planned = plan(spec)
    ops = connect(spec, source=str(spec_file))
    before: list[Planned] | None = None
    kept: set[str] = set()
    replaced: list[str] = []
    if store.exists(spec.name):
        with opened(spec.name) as journal:
            entries = {e.name: e for e in journal.entries()}
            recorded = journal.meta("spec")
            if recorded is not None and recorded != json.dumps(_raw(spec_file)) and entries:
                if journal.meta("state") == "created":
                    raise QuintupleOError(
                        f"environment {spec.name} exists with another spec: run `quintupleo "
                        f"env delete {spec.name}` first, or give the spec another name")
                before = plan(store.stored_spec(journal))
                replaced = sorted(changed(before, planned, set(entries)))
            kept = {name for name, e in entries.items()
                    if e.status == "created" and name not in replaced}
    to_make = [p for p in planned if p.name not in kept]
    checks = preflight(ops.conn, spec, str(spec_file), to_make)
    return Prepared(spec, planned, to_make, replaced, before, checks), ops


def create(spec_file: Path, progress: apply.Progress = lambda phase, done, total: None,
           say: Say = lambda line: None) -> Outcome:
    """Create what is missing of the environment `spec_file` describes, after the pre-flight.
    A create that stopped half way may be run again with a corrected spec."""
    prepared, ops = prepare(spec_file)
    spec, planned = prepared.spec, prepared.planned
    with opened(spec.name, must_exist=False) as journal:
        if spec.bmc.host is not None:
            ops.host = BmcHost(spec, journal, store.bmc_password(journal))
        if prepared.before is not None:
            for name in apply.reconcile(ops, journal, prepared.before, planned):
                say(f"replaced {name}: the corrected spec makes it otherwise")
        journal.set_meta("spec", json.dumps(_raw(spec_file)))
        journal.set_meta("state", "creating")
        if spec.bmc.boot_strategy != "none":
            ensure_ipxe_images(ops.conn, say)
        if spec.relay is not None and spec.relay.image == RELAY_IMAGE:
            ensure_relay_image(ops.conn, say)
        started = time.monotonic()
        ids = apply.create(ops, journal, planned, progress)
        journal.set_meta("state", "created")
    return Outcome(spec, len(ids), ops.calls, time.monotonic() - started,
                   checks=prepared.checks, nodes=sum(1 for p in planned if p.node),
                   booted=sum(1 for p in planned if p.server and not p.node
                              and p.server.role != "undercloud"))


def delete(name: str, progress: apply.Progress = lambda phase, done, total: None) -> Outcome:
    """Delete everything the environment created, also after a crash during create."""
    with opened(name) as journal:
        spec = store.stored_spec(journal)
        ops = connect(spec)
        held = len(journal.entries())
        journal.set_meta("state", "deleting")
        started = time.monotonic()
        apply.delete(ops, journal, progress)
        journal.set_meta("state", "deleted")
    return Outcome(spec, held, ops.calls, time.monotonic() - started)


def audit(name: str) -> list[apply.Leak]:
    """Resources tagged or named for the environment that its journal does not hold."""
    with opened(name) as journal:
        spec = store.stored_spec(journal)
        return apply.audit(connect(spec), journal, plan(spec))


def ensure_ipxe_images(conn: Any, say: Say = lambda line: None) -> None:
    """The images network boots need: shared by every environment, kept when one is deleted."""
    from quintupleo.images.glance import publish_ipxe
    from quintupleo.images.ipxe import build, default_dir
    for image in build(default_dir()):
        done = publish_ipxe(conn, image)
        say(f"iPXE image {done.name}: {'reused' if done.reused else 'uploaded'} ({done.id})")


def ensure_relay_image(conn: Any, say: Say = lambda line: None) -> None:
    """The relay host's image, built here from Debian's packages; shared, kept on delete."""
    from quintupleo.images.glance import publish_relay
    from quintupleo.images.relay import build_relay
    done = publish_relay(conn, build_relay(), RELAY_IMAGE)
    say(f"relay image {done.name}: {'reused' if done.reused else 'uploaded'} ({done.id})")


def _raw(spec_file: Path) -> Any:
    from ruamel.yaml import YAML
    return YAML(typ="safe").load(spec_file.read_text())
