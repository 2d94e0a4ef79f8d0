"""pytest settings for the whole repository: the tests and nbval's notebook cells.

nbval 0.11 sends a cell to the kernel, waits for the execute reply on the shell channel
(up to ``--nbval-cell-timeout``, default 2000 s), and only *then* reads the cell's outputs on
the IOPub channel, waiting ``output_timeout`` (hard-coded 5 s) for each message until the
kernel says "idle". Two things made that depend on the machine's speed:

* While nbval waits on the shell channel nobody reads IOPub, and ZeroMQ drops messages once
  1000 are queued at the kernel and 1000 at the client (the default high-water marks). A
  long training cell's progress bars send a widget update every tenth of a second or so; the
  slower the machine, the longer the cell and the more updates, until the queue overflows
  and the kernel's final "idle" message is dropped too. nbval then waits for output that
  will never come and fails a cell that ran correctly ("Timeout of 60 seconds exceeded
  waiting for output", lab 05's cell 12 at load 12-20). Fix: the client's IOPub socket
  queues without limit (``RCVHWM = 0``), so its I/O thread keeps draining the kernel's.
  ``tests/course/test_nbval_outputs.py`` runs a cell that sends far more than 2000 messages.
* The wait for the next output message is never shorter than the cell's own limit: after
  the execute reply the outputs are already on their way, so a wait can only end early by
  failing a cell that worked.
"""

from __future__ import annotations

from typing import Any

_IOPUB_CONTEXT: Any = None  # one ZeroMQ context (one I/O thread) for every nbval kernel


def _start_new_kernel(startup_timeout: float = 60, kernel_name: str = "python", **kwargs: Any):
    """nbval's ``nbval.kernel.start_new_kernel``, with a client whose sockets queue without
    limit (``RCVHWM = 0``: the context's default for every socket made from it)."""
    global _IOPUB_CONTEXT
    import zmq
    from jupyter_client import KernelManager
    from nbval.kernel import NbvalKernelspecManager

    if _IOPUB_CONTEXT is None:
        _IOPUB_CONTEXT = zmq.Context()
        _IOPUB_CONTEXT.setsockopt(zmq.RCVHWM, 0)
    km = KernelManager(kernel_name=kernel_name, kernel_spec_manager=NbvalKernelspecManager())
    km.start_kernel(**kwargs)
    kc = km.client(context=_IOPUB_CONTEXT)
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=startup_timeout)
    except RuntimeError:
        kc.stop_channels()
        km.shutdown_kernel()
        raise
    return km, kc


def pytest_configure(config: Any) -> None:
    try:
        import nbval.kernel
    except ImportError:  # nbval not installed: no notebook cells to look after
        return
    nbval.kernel.start_new_kernel = _start_new_kernel  # RunningKernel looks it up here


def pytest_collection_modifyitems(config: Any, items: list) -> None:
    cell_limit = float(getattr(config.option, "nbval_cell_timeout", 2000) or 2000)
    for item in items:
        if hasattr(item, "output_timeout"):  # nbval's IPyNbCell
            item.output_timeout = max(item.output_timeout, cell_limit)
