"""Create, delete and audit an environment: plan -> journal -> cloud, in parallel by phase."""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from quintupleo.environments.cloud import BULK, WORKERS, CloudOps
from quintupleo.environments.journal import Entry, Journal
from quintupleo.environments.plan import Kind, Planned, changed

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]   # (phase, done, total)


@dataclass(frozen=True)
class Leak:
    kind: Kind
    name: str
    cloud_id: str
    why: str


def create(ops: CloudOps, journal: Journal, planned: list[Planned],
           progress: Progress = lambda phase, done, total: None) -> dict[str, str]:
    """Create what is missing; a second run creates nothing. Returns name -> cloud ID."""
    entries = {e.name: e for e in journal.entries()}
    ids = {name: e.cloud_id for name, e in entries.items() if e.status == "created" and e.cloud_id}
    _recheck(ops, journal, planned, ids)
    entries = {e.name: e for e in journal.entries()}
    made_now: set[str] = set()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="env") as pool:
        for kind in Kind:
            todo = [p for p in planned if p.kind is kind and p.name not in ids]
            if kind is Kind.SERVER:
                # A node made again (deleted out of band) on ports that are up: down they go,
                # so its first boot stays as invisible as the others'.
                ops.set_ports_up({ids[port] for p in todo if p.node and p.server
                                  for port in p.server.ports if port not in made_now}, False)
            done = 0
            progress(kind.value, done, len(todo))
            for item in todo:
                journal.creating(item.name, item.kind)   # before the cloud sees it
            # Only what an earlier run started (and crashed) is looked for before creating;
            # the rest of a kind the cloud makes in bulk goes BULK at a time.
            bulk = ops.kinds[kind].in_bulk
            batches = [[item] for item in todo if item.name in entries or not bulk(item)]
            fresh = [item for item in todo if item.name not in entries and bulk(item)]
            batches += [fresh[start:start + BULK] for start in range(0, len(fresh), BULK)]
            futures = {pool.submit(ops.create_many, batch, ids, batch[0].name in entries): batch
                       for batch in batches}
            for future, batch in futures.items():
                for item, cloud_id in zip(batch, future.result(), strict=True):
                    journal.created(item.name, cloud_id)
                    ids[item.name] = cloud_id
                    made_now.add(item.name)
                    done += 1
                progress(kind.value, done, len(todo))
    # Bare-metal nodes are handed over powered off, then their ports are brought up; a node
    # counts as handed over only when both are done (a crash in between is finished here).
    waiting = [p for p in planned if p.node and journal.meta(f"handed-over:{p.name}") is None]
    if waiting:
        ops.power_off({ids[p.name] for p in waiting})
        ops.set_ports_up({ids[port] for p in waiting if p.server for port in p.server.ports},
                         True)
        for item in waiting:
            journal.set_meta(f"handed-over:{item.name}", "yes")
    return ids


def _recheck(ops: CloudOps, journal: Journal, planned: list[Planned], ids: dict[str, str]) -> None:
    """Resources the journal holds that are gone from the cloud (deleted out of band) are made
    again, and so is what refers to them by ID (a server to its port, the BMC host to its
    credential): the old one is removed first."""
    kind_of = {e.name: e.kind for e in journal.entries()}
    # One tagged listing per kind of resource held (ports and VIPs are ports, hosts servers).
    present: dict[Kind, set[str]] = {}
    gone = set()
    for name, cloud_id in ids.items():
        kind = ops.kinds[kind_of[name]].listed_as or kind_of[name]
        if kind not in present:
            present[kind] = {r.id for r in ops.tagged(kind)}
        if cloud_id not in present[kind] and not ops.exists(kind, cloud_id):
            gone.add(name)
    if not gone:
        return
    stale = set(gone)
    while more := {p.name for p in planned if p.name in ids and p.name not in stale
                   and stale & set(p.needs)}:
        stale |= more
    for name in sorted(gone):
        log.warning("%s %s is gone from the cloud: making it again", kind_of[name].value, name)
    for kind in reversed(Kind):
        replaced = [name for name in stale - gone if kind_of[name] is kind]
        for name in replaced:
            log.warning("replacing %s %s: what it refers to was made again", kind.value, name)
            ops.delete(kind, ids[name])
        if ops.kinds[kind].deleted_later and replaced:
            ops.wait_gone({ids[name] for name in replaced})
    for name in stale:
        journal.forget(name)
        journal.drop_meta(f"handed-over:{name}")
        del ids[name]


def reconcile(ops: CloudOps, journal: Journal, before: list[Planned],
              after: list[Planned]) -> list[str]:
    """A create that stopped half way, run again with another spec: what it made that the new
    plan makes alike is kept; the rest, and what refers to it, is deleted first (what never got
    its ID is found by name). The names removed."""
    entries = {e.name: e for e in journal.entries()}
    stale = changed(before, after, set(entries))
    for kind in reversed(Kind):
        removed = set()
        for name in sorted(n for n in stale if entries[n].kind is kind):
            found = entries[name].cloud_id or getattr(ops.find(kind, name), "id", None)
            log.warning("removing %s %s: the new spec makes it otherwise", kind.value, name)
            if found is not None:
                ops.delete(kind, str(found))
                removed.add(str(found))
        if ops.kinds[kind].deleted_later and removed:
            ops.wait_gone(removed)
    for name in stale:
        journal.forget(name)
        journal.drop_meta(f"handed-over:{name}")
    return sorted(stale)


def delete(ops: CloudOps, journal: Journal,
           progress: Progress = lambda phase, done, total: None) -> None:
    """Remove every journalled resource, servers first; what is already gone is fine; what
    never got its ID recorded (a crash during create) is found by its exact name."""
    entries = journal.entries()
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="env") as pool:
        for kind in reversed(Kind):
            todo = [e for e in entries if e.kind is kind]
            progress(kind.value, 0, len(todo))

            def remove(entry: Entry, kind: Kind = kind) -> str | None:
                journal.deleting(entry.name)
                cloud_id = entry.cloud_id
                if cloud_id is None:
                    found = ops.find(kind, entry.name)
                    cloud_id = str(found.id) if found else None
                if cloud_id is not None:
                    ops.delete(kind, cloud_id)
                return cloud_id

            futures = [pool.submit(remove, e) for e in todo]
            removed = {cloud_id for future in futures
                       if (cloud_id := future.result()) is not None}
            if ops.kinds[kind].deleted_later:
                ops.wait_gone(removed)    # the servers' ports are freed only then
            for done, entry in enumerate(todo, 1):
                journal.forget(entry.name)
                progress(kind.value, done, len(todo))
    # Anything tagged for the environment that the journal never saw (should be nothing).
    leaks = audit(ops, journal, [])
    for leak in sorted(leaks, key=lambda leak: list(Kind).index(leak.kind), reverse=True):
        log.warning("removing %s %s (%s)", leak.kind.value, leak.name, leak.why)
        ops.delete(leak.kind, leak.cloud_id)
        if ops.kinds[leak.kind].deleted_later:
            ops.wait_gone({leak.cloud_id})


def audit(ops: CloudOps, journal: Journal, planned: list[Planned]) -> list[Leak]:
    """Resources tagged for the environment, or named as its plan names them, that the journal
    does not hold as created."""
    held = {e.cloud_id for e in journal.entries() if e.status == "created"}
    names = {p.name for p in planned}
    leaks: dict[str, Leak] = {}
    for kind in Kind:
        if ops.kinds[kind].listed_as is not None:
            continue   # listed once, as what it is listed with
        for resource in ops.tagged(kind):
            if resource.id not in held:
                leaks[resource.id] = Leak(kind, resource.name, resource.id,
                                          "tagged, not journalled")
        for resource in ops.listing(kind):
            if resource.name in names and resource.id not in held and resource.id not in leaks:
                leaks[resource.id] = Leak(kind, resource.name, resource.id, "named, not journalled")
    return list(leaks.values())
