"""Executing a notebook on a fresh Jupyter kernel that runs *this* Python (nbclient).

Shared by ``labkit course run`` (``execute_notebook``) and the grader's execute worker
(``capped_client``: a deadline for the whole notebook and a cap on stored output).
``inject_parameters`` adds papermill's injected-parameters cell.

Kernel connection files (``kernel-<id>.json``) go to a folder of labkit's own in the
temporary folder (``kernel_files``), never to ``/tmp`` itself or Jupyter's runtime folder;
it is removed, and the kernel stopped, however the run ends (an error, a time-out, a dead
kernel, Ctrl-C, a closed terminal). Folders of runs that were killed outright (SIGKILL, out
of memory) are removed by the next run.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from traitlets import default

from labkit.course.build import PARAMETERS_TAG, section_above

KERNEL_NAME = "python3"


class CurrentEnvKernelSpecManager(KernelSpecManager):
    """Kernelspec "python3" = ipykernel on this interpreter (as nbval's --nbval-current-env)."""

    def get_kernel_spec(self, kernel_name: str) -> KernelSpec:
        if kernel_name == KERNEL_NAME:
            from ipykernel.kernelspec import RESOURCES, get_kernel_dict

            return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())
        return super().get_kernel_spec(kernel_name)


class CurrentEnvKernelManager(AsyncKernelManager):
    """nbclient's kernel manager, starting kernels with ``sys.executable``."""

    @default("kernel_spec_manager")
    def _kernel_spec_manager_default(self) -> KernelSpecManager:
        return CurrentEnvKernelSpecManager(data_dir=self.data_dir)


KERNEL_FILES_PREFIX = "labkit-kernels-"  # + this process's id + "-": see kernel_files


@contextlib.contextmanager
def kernel_files() -> Iterator[type[CurrentEnvKernelManager]]:
    """A kernel manager class whose connection files go to a private folder, removed on the
    way out whatever happened (and with it the folders of labkit runs that are dead)."""
    remove_dead_folders(KERNEL_FILES_PREFIX)
    folder = Path(tempfile.mkdtemp(prefix=f"{KERNEL_FILES_PREFIX}{os.getpid()}-"))

    class Manager(CurrentEnvKernelManager):
        @default("connection_file")
        def _connection_file_default(self) -> str:
            return str(folder / f"kernel-{uuid.uuid4().hex}.json")

    try:
        yield Manager
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remove_dead_folders(prefix: str, remove: Callable[[Path], Any] | None = None) -> None:
    """Remove this user's temporary folders named ``<prefix><pid>-...`` whose process is gone
    (a run killed outright left them), with ``remove`` (default: ``shutil.rmtree``)."""
    remove = remove or (lambda folder: shutil.rmtree(folder, ignore_errors=True))
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*-*"):
        pid = folder.name.removeprefix(prefix).split("-")[0]
        try:
            if not pid.isdigit() or folder.lstat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its run is dead: nobody reads these files any more
            remove(folder)
        except OSError:  # alive (another user's, or not ours to signal)
            continue


def stop_kernel(client: Any) -> None:
    """Kill ``client``'s kernel (and what it started) if nbclient left it running."""
    km = getattr(client, "km", None)
    pgid = getattr(getattr(km, "provisioner", None), "pgid", None)
    if pgid and int(pgid) != os.getpgid(0):  # the kernel runs in a process group of its own
        with contextlib.suppress(OSError):
            os.killpg(int(pgid), signal.SIGKILL)


@contextlib.contextmanager
def _interrupts_stop_the_run() -> Iterator[None]:
    """A closed terminal (SIGHUP) or SIGTERM while a notebook runs stops the run as Ctrl-C
    does, so that cleaning up happens; nbclient's own INT/TERM handlers are undone after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    kept = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM)}
    signal.signal(signal.SIGHUP, interrupt)
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler)


class NotebookTimeout(TimeoutError):
    """The notebook's time limit ran out while a cell was running.

    Attributes:
        cell: the index of that cell in the notebook.
    """

    def __init__(self, message: str, cell: int) -> None:
        super().__init__(message)
        self.cell = cell


def execute_notebook(
    nb: nbformat.NotebookNode,
    cwd: str | Path,
    env: dict[str, str] | None = None,
    timeout: float | None = None,
    allow_errors: bool = False,
) -> nbformat.NotebookNode:
    """Execute ``nb`` in place on a fresh current-environment kernel in folder ``cwd``.

    Args:
        timeout: seconds for the whole notebook, from now (``None``: no limit); each cell
            may run until they are up.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (``nb`` keeps the outputs so far).
        NotebookTimeout: the time ran out while a cell ran (its message names the cell).
    """
    from nbclient import NotebookClient

    class TrackingClient(NotebookClient):
        last_cell = -1

        async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kw: Any):
            self.last_cell = cell_index
            return await super().async_execute_cell(cell, cell_index, *args, **kw)

    deadline = None if timeout is None else time.monotonic() + timeout

    def timeout_func(cell: Any) -> int | None:  # what is left of the notebook's time
        return None if deadline is None else max(1, int(deadline - time.monotonic()))

    with kernel_files() as manager, _interrupts_stop_the_run():
        client = TrackingClient(
            nb,
            timeout_func=timeout_func,
            kernel_name=KERNEL_NAME,
            kernel_manager_class=manager,
            allow_errors=allow_errors,
            resources={"metadata": {"path": str(cwd)}},
        )
        try:
            return _execute(client, nb, env, timeout)
        finally:
            stop_kernel(client)


def _execute(
    client: Any, nb: nbformat.NotebookNode, env: dict | None, timeout: float | None
) -> nbformat.NotebookNode:
    """``execute_notebook``'s run, its failures said as the caller reports them."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    kwargs = {"env": env} if env is not None else {}
    try:
        return client.execute(**kwargs)
    except CellTimeoutError:
        where = describe_cell(nb, client.last_cell)
        raise NotebookTimeout(
            f"{where} was still running when the notebook's {timeout:g} s ran out",
            client.last_cell,
        ) from None
    except Exception as err:
        # nbclient answers Ctrl-C and SIGTERM itself (it stops the kernel, then the cell
        # fails): that is the user stopping the run, not the lab failing
        if hasattr(client, "_async_cleanup_kernel_future"):
            raise KeyboardInterrupt from None
        if isinstance(err, (CellExecutionError, DeadKernelError)):
            err.cell_description = describe_cell(nb, client.last_cell)  # for the message
        raise


def describe_cell(nb: nbformat.NotebookNode, index: int) -> str:
    """``cell 12 (section "5. Train the U-Net")``: a cell as a reader finds it (the nearest
    markdown heading above it; cells counted from 1 at the top, as Jupyter's order)."""
    heading = section_above(nb, index)
    where = f"cell {index + 1}"
    return f'{where} (section "{heading}")' if heading else where


def inject_parameters(nb: nbformat.NotebookNode, values: dict[str, Any]) -> None:
    """Insert ``NAME = value`` lines after the cell tagged ``parameters`` (papermill style)."""
    tagged = [
        i for i, c in enumerate(nb.cells) if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])
    ]
    if not tagged:
        raise ValueError("notebook has no cell tagged 'parameters' to inject values after")
    i = tagged[0]
    lines = ["# Injected by labkit course run"]
    lines += [f"{name} = {value!r}" for name, value in values.items()]
    cell = nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})
    cell.id = "injected-parameters"
    nb.cells.insert(i + 1, cell)


def traceback_tail(text: str, lines: int = 8) -> list[str]:
    """The last ``lines`` lines of a kernel traceback, without colour codes or rulers."""
    plain = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text or "")
    kept = [line for line in plain.splitlines() if line.strip() and not set(line) <= set("-")]
    return [line[:300] for line in kept[-lines:]]


def capped_client(
    nb: nbformat.NotebookNode,
    deadline: float,
    max_output: int,
    cwd: str,
    on_kernel: Callable[[int], None],
    manager: type[CurrentEnvKernelManager] = CurrentEnvKernelManager,
) -> Any:
    """An nbclient ``NotebookClient`` with a deadline for the whole notebook (``time.monotonic``
    seconds), at most ``max_output`` characters of stored output, the last cell it started in
    ``last_cell``, and ``on_kernel(pgid)`` called with the kernel's process group once it
    started (for a parent that must kill the kernel if this process hangs); ``manager`` is
    the kernel manager class (``kernel_files``' for private connection files)."""
    from nbclient import NotebookClient

    class CappedClient(NotebookClient):
        """nbclient with a deadline for the whole notebook and a cap on stored output."""

        last_cell = -1
        kept = 0
        dropped = 0

        async def async_start_new_kernel(self, **kwargs: Any) -> None:
            await super().async_start_new_kernel(**kwargs)
            # For the parent: the kernel runs in its own process group; kill it if we hang.
            pgid = getattr(self.km.provisioner, "pgid", None)
            if pgid:
                on_kernel(int(pgid))

        async def async_execute_cell(self, cell: Any, cell_index: int, *args: Any, **kw: Any):
            self.last_cell = cell_index
            return await super().async_execute_cell(cell, cell_index, *args, **kw)

        def output(self, outs: list, msg: dict, display_id: Any, cell_index: int) -> Any:
            content = msg.get("content", {})
            size = len(str(content.get("text", ""))) + len(str(content.get("data", "")))
            if self.kept + size > max_output and msg["msg_type"] != "error":
                self.dropped += size
                return None
            self.kept += size
            return super().output(outs, msg, display_id, cell_index)

    return CappedClient(
        nb,
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())),
        kernel_name=KERNEL_NAME,
        kernel_manager_class=manager,
        allow_errors=False,
        record_timing=False,
        startup_timeout=120,
        resources={"metadata": {"path": str(cwd)}},
    )
