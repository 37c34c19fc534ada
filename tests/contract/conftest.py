"""The contract suite's cell fixture: one beat and two workers per backend cell, shared by the
module's tests of that cell (pytest groups the tests by cell, so each cell starts once).

While one cell's tests run, the next two cells are already being made (database, broker, processes)
in a background thread, and a finished cell is stopped in the background: start-up and shutdown
cost no wall time but the first cell's.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack

import pytest

from tests.conftest import migrated_database
from tests.contract.backends import ALL_CELLS, DATABASE_CELLS, Cell, broker, params
from tests.contract.harness import ContractCell


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cells(cells): the backend cells a contract test runs on (default: all)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Drop the (test, cell) pairs a test's ``cells`` mark leaves out."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        mark = item.get_closest_marker("cells")
        if callspec is None or "contract" not in callspec.params or mark is None:
            kept.append(item)
            continue
        (kept if callspec.params["contract"] in mark.args[0] else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class CellPool:
    """Cells made ahead of their tests and stopped behind them, each with its own database and broker."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="contract-cell")
        self._cells: dict[Cell, Future[tuple[ExitStack, ContractCell]]] = {}
        self._stopping: list[Future[None]] = []
        # Alembic keeps its migration context in module globals: one upgrade at a time.
        self._migrating = threading.Lock()

    def _make(self, cell: Cell) -> tuple[ExitStack, ContractCell]:
        stack = ExitStack()
        try:
            with self._migrating:
                db_url = stack.enter_context(migrated_database(cell.database))
            broker_url = stack.enter_context(broker(cell.broker))
            log_dir = self._tmp.mktemp(cell.id)
            running = ContractCell(cell, db_url, broker_url, log_dir)
            stack.callback(print, f"{cell.id}: cluster logs in {log_dir}")
            stack.callback(running.stop)
            running.launch(lost_worker=cell in DATABASE_CELLS)
        except BaseException:
            stack.close()
            raise
        return stack, running

    def prepare(self, cell: Cell) -> None:
        if cell not in self._cells:
            self._cells[cell] = self._executor.submit(self._make, cell)

    def get(self, cell: Cell) -> ContractCell:
        self.prepare(cell)
        return self._cells[cell].result()[1]

    def release(self, cell: Cell) -> None:
        made = self._cells.pop(cell)
        self._stopping.append(self._executor.submit(lambda: made.result()[0].close()))

    def close(self) -> None:
        for cell in list(self._cells):
            self.release(cell)
        for stopping in self._stopping:
            stopping.exception()  # wait; a failed stop must not hide the tests' outcome
        self._executor.shutdown()


@pytest.fixture(scope="session")
def cell_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CellPool]:
    pool = CellPool(tmp_path_factory)
    try:
        yield pool
    finally:
        pool.close()


def _next_cells(session: pytest.Session, cell: Cell, count: int = 2) -> list[Cell]:
    """The ``count`` cells whose tests come after ``cell``'s in this run's order."""
    order: list[Cell] = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and "contract" in callspec.params and callspec.params["contract"] not in order:
            order.append(callspec.params["contract"])
    position = order.index(cell) if cell in order else len(order)
    return order[position + 1 : position + 1 + count]


@pytest.fixture(scope="module", params=params(ALL_CELLS))
def contract(request: pytest.FixtureRequest, cell_pool: CellPool) -> Iterator[ContractCell]:
    cell: Cell = request.param
    for following in _next_cells(request.session, cell):
        cell_pool.prepare(following)
    try:
        running = cell_pool.get(cell)
        running.ready()
        yield running
    finally:
        cell_pool.release(cell)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(autouse=True)
def _cell_logs_on_failure(request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test prints the cell's process logs (pytest's temp folders are soon removed)."""
    yield
    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed and "contract" in request.fixturenames:
        running: ContractCell = request.getfixturevalue("contract")
        for proc in running.cluster.processes:
            print(f"===== {running.cell.id} {proc.name} (last 200 lines) =====")
            print("\n".join(proc.log().splitlines()[-200:]))
