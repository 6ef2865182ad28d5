"""This machine's pool: tasks in harness threads, each driving a sandboxed worker process."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from harness import sandbox
from harness.executors.base import EXECUTORS, Task


@EXECUTORS.register("local")
@dataclass
class LocalExecutor:
    """Tasks on this machine, ``jobs`` at a time; timing groups in turn, one task at a time."""

    def map(self, fn: Task, payloads: list, limits: sandbox.Limits, jobs: int
            ) -> Iterator[tuple[int, sandbox.Outcome]]:
        yield from sandbox.run_tasks(fn, payloads, limits, jobs)

    def map_groups(self, fn: Task, groups: list[list], limits: sandbox.Limits
                   ) -> Iterator[tuple[int, list[sandbox.Outcome]]]:
        for index, group in enumerate(groups):
            yield index, [sandbox.run_task(fn, payload, limits) for payload in group]

    def close(self) -> None:
        pass
