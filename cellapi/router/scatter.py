"""The one fan-out: ask many cells at once, within one deadline, and get each cell's outcome back as a
value (nova's scatter_gather_cells): it answered with a result, it timed out, it failed with an error,
or it was skipped because it is known down (and never called). Never a hang, never a blanket error:
when the deadline passes, the calls still out are cancelled and awaited, so nothing runs on after it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from fedlib.errors import CellfedError
from replication.model import Cell

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Answered(Generic[T]):
    cell: Cell
    result: T


@dataclass(frozen=True)
class TimedOut:
    cell: Cell


@dataclass(frozen=True)
class Failed:
    cell: Cell
    error: Exception  # a CellfedError, unless the call has a bug (logged)


@dataclass(frozen=True)
class Skipped:
    cell: Cell  # known down: not called


Outcome: TypeAlias = Answered[T] | TimedOut | Failed | Skipped


@dataclass(frozen=True)
class Gathered(Generic[T]):
    """Every asked cell's outcome, in the order the cells were given."""

    outcomes: tuple[Outcome[T], ...]

    def answers(self) -> list[Answered[T]]:
        return [o for o in self.outcomes if isinstance(o, Answered)]

    def missing(self) -> list[Cell]:
        """The cells that gave no answer, whatever the reason."""
        return [o.cell for o in self.outcomes if not isinstance(o, Answered)]


async def scatter_gather(
    cells: Iterable[Cell],
    call: Callable[[Cell], Awaitable[T]],
    *,
    timeout_s: float,
    is_up: Callable[[str], bool],
) -> Gathered[T]:
    """`call(cell)` for every cell `is_up(cell_id)` says is up, all at once, all within `timeout_s`."""
    deadline = asyncio.get_running_loop().time() + timeout_s

    async def one(cell: Cell) -> Outcome[T]:
        if not is_up(cell.cell_id):
            return Skipped(cell)
        try:
            async with asyncio.timeout_at(deadline):
                return Answered(cell, await call(cell))
        except TimeoutError:
            return TimedOut(cell)
        except CellfedError as exc:
            return Failed(cell, exc)
        except Exception as exc:
            log.warning("fan-out call to cell %s failed unexpectedly", cell.cell_id, exc_info=True)
            return Failed(cell, exc)

    async with asyncio.TaskGroup() as group:  # exits only when every call has ended
        tasks = [group.create_task(one(cell)) for cell in cells]
    return Gathered(tuple(task.result() for task in tasks))
