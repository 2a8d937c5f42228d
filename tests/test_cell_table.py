"""The Train page's per-cell table (cell, status, node, epoch/of, attempt) from progress
events, and the executor flags the page adds to the command it shows."""
from __future__ import annotations

from core.cli.scale_args import executor_args
from core.runfolder.progress import CellRow, cell_table


def _ev(event: str, cell: str, **fields) -> dict:
    return {"event": event, "cell": cell, **fields}


def test_cells_from_two_nodes_with_a_retry_and_a_skip():
    events = [
        {"event": "preparing"},  # no cell: not a row
        _ev("cell_start", "pooled", node="10.0.0.1", attempt=1),
        _ev("epoch", "pooled", node="10.0.0.1", epoch=2, epochs=2),
        _ev("cell_done", "pooled", node="10.0.0.1"),
        _ev("cell_start", "all-RCC", node="10.0.0.1", attempt=1),
        _ev("cell_start", "all-LCC", node="10.0.0.2", attempt=1),
        _ev("step", "all-RCC", node="10.0.0.1", epoch=1, epochs=3, step=4, steps=10),
        _ev("epoch", "all-LCC", node="10.0.0.2", epoch=1, epochs=3),
        # the worker on .2 died: Ray retried the cell on .1
        _ev("cell_start", "all-LCC", node="10.0.0.1", attempt=2),
        _ev("epoch", "all-LCC", node="10.0.0.1", epoch=3, epochs=3),
        _ev("cell_done", "all-LCC", node="10.0.0.1"),
        _ev("cell_skipped", "roi-LMLO", reason="3 images"),  # decided by the driver
        _ev("cell_start", "noroi-RCC", fold=1, node="10.0.0.2", attempt=1),
    ]
    rows = cell_table(events, this_node="here")
    assert rows == [
        CellRow("pooled", "done", "10.0.0.1", 2, 2, 1),
        CellRow("all-RCC", "running", "10.0.0.1", 1, 3, 1),
        CellRow("all-LCC", "done", "10.0.0.1", 3, 3, 2),
        CellRow("roi-LMLO", "skipped", None, None, None, None),  # trained nowhere
        CellRow("CV fold 1 · noroi-RCC", "running", "10.0.0.2", None, None, 1),
    ]
    stopped = cell_table(events, this_node="here", running=False)
    assert [r.status for r in stopped] == ["done", "stopped", "done", "skipped", "stopped"]


def test_events_without_a_node_are_this_machine():
    """A run trained by one process before events named their node: its own host."""
    events = [_ev("step", "all-RCC", epoch=1, epochs=2, step=1, steps=5),
              _ev("cell_done", "all-RCC"), _ev("cell_start", "all-LCC"),
              _ev("cell_start", "all-LCC")]  # started twice, no attempt field: the count
    assert cell_table(events, this_node="me") == [CellRow("all-RCC", "done", "me", 1, 2, 1),
                                                  CellRow("all-LCC", "running", "me", None,
                                                          None, 2)]
    import socket

    assert cell_table(events)[0].node == socket.gethostname()


def test_executor_flags_are_left_out_at_their_defaults():
    assert executor_args() == executor_args("local", "h:1", 1.0, 2) == []
    assert executor_args("ray") == ["--executor", "ray"]
    assert executor_args("ray", "10.0.0.1:6379", 0.25, 4) == [
        "--executor", "ray", "--ray-address", "10.0.0.1:6379", "--gpus-per-cell", "0.25",
        "--cpus-per-cell", "4"]
