"""Callables for the pipeline tests, importable by module path (`pipeline_tasks:meet`) in threads and on Dask workers.

Everything that must hold across processes (a rendezvous, a failure on the first attempt only) goes through files,
so the same task proves the same thing on threads and on a Dask cluster.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path


def meet(folder: str, name: str, parties: int = 2, timeout: float = 20.0) -> dict:
    """Arrive at the rendezvous in `folder`, then wait until `parties` steps have arrived.

    Steps that run one after the other cannot all arrive: the first waits out `timeout` and fails. Returns who
    ran it (process and thread) and when everyone had arrived.
    """
    room = Path(folder)
    room.mkdir(parents=True, exist_ok=True)
    (room / name).write_text(str(os.getpid()))
    deadline = time.monotonic() + timeout
    while len(list(room.iterdir())) < parties:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: only {len(list(room.iterdir()))} of {parties} steps arrived in {timeout} s")
        time.sleep(0.01)
    return {"where": {"pid": os.getpid(), "thread": threading.current_thread().name}, "met": time.time()}


def noop(**values) -> None:
    "Do nothing: the benchmark's step."


def add(a: float, b: float) -> float:
    "One output, returned as itself."
    return a + b


def pair(a: object, b: object) -> tuple:
    "Both values, as one."
    return (a, b)


def divide(a: float, b: float) -> dict:
    "Two outputs, returned as a mapping."
    return {"quotient": a // b, "remainder": a % b}


def fail(message: str = "boom", **values) -> None:
    raise RuntimeError(message)


def flaky(marker: str, value: int = 1) -> dict:
    "Fail on the first call for `marker` (a file that does not exist yet), succeed on the next."
    path = Path(marker)
    if not path.exists():
        path.write_text("failed once")
        raise RuntimeError("first attempt fails")
    return {"value": value}


def sleep(seconds: float, value: object = None) -> object:
    "Return `value` after `seconds`, in short sleeps, as Python code that a cancelled step stops at once."
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(0.01)
    return value


def sleep_then_touch(seconds: float, path: str) -> dict:
    "Create the file at `path` after `seconds`: a late side effect a cancelled step must not have."
    sleep(seconds)
    return touch(path)


def touch(path: str) -> dict:
    "Create the file at `path`: a side effect a dry run must not have."
    Path(path).write_text("touched")
    return {"path": path}


def wrong_outputs() -> dict:
    return {"something": 1, "else": 2}


NOT_CALLABLE = 42
