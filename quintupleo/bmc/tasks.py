"""Long-running BMC operations as tasks (Redfish's TaskService): a firmware update, or a volume
created at the next reset. A task is new, runs, and ends Completed (OK), or Exception with the
reason in its messages. Tasks live as long as the BMC process, the newest MAX_TASKS of them, as a
real BMC's job queue does; a client that finds its task gone is told 404."""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field

MAX_TASKS = 200


@dataclass
class Task:
    id: str
    name: str
    node: str                        # the node's backend id
    state: str = "Running"           # Running, Completed, Exception
    status: str = "OK"               # OK, Warning, Critical
    percent: int = 0
    messages: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    ended: float | None = None

    @property
    def running(self) -> bool:
        return self.ended is None

    def progress(self, percent: int, message: str | None = None) -> None:
        self.percent = percent
        if message:
            self.messages.append(message)

    def complete(self, message: str) -> None:
        self.state, self.status, self.percent, self.ended = "Completed", "OK", 100, time.time()
        self.messages.append(message)

    def fail(self, message: str) -> None:
        self.state, self.status, self.ended = "Exception", "Critical", time.time()
        self.messages.append(message)


class TaskList:
    def __init__(self) -> None:
        self._tasks: OrderedDict[str, Task] = OrderedDict()
        self._ids = itertools.count(1)

    def start(self, name: str, node: str) -> Task:
        task = Task(str(next(self._ids)), name, node)
        self._tasks[task.id] = task
        while len(self._tasks) > MAX_TASKS:
            self._tasks.popitem(last=False)
        return task

    def get(self, task_id: str) -> Task | None:
        return self._tasks.get(task_id)

    def __iter__(self) -> Iterator[Task]:
        return iter(list(self._tasks.values()))
