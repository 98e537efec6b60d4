"""Daemon threads kept for reuse by MultiProfileSigner's network and HSM signers.

A new thread per signature cost 0.3-0.7 ms, which showed beside a 3 ms KMS call and dwarfed a
0.1 ms HSM signature. `concurrent.futures.ThreadPoolExecutor` does not fit: its threads are
joined at interpreter exit, so one hung backend would hang the process after its timeout
fired, and a bounded pool would queue every later signature behind it. This pool grows when
no worker is idle (a hung signer only holds its own thread), and a worker that has had nothing
to do for `idle` seconds exits, so a process that stops signing keeps no threads.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable

_Task = Callable[[], None]


class Workers:
    """A cached pool of daemon threads: `submit` never waits and never queues behind a hang."""

    def __init__(self, *, idle: float = 30.0, name: str = "dssesign-worker") -> None:
        self._tasks: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        # Workers waiting for a task minus tasks queued but not yet taken: a submit that finds
        # it positive hands its task to a waiting worker, otherwise it starts one.
        self._idle_workers = 0
        self._idle = idle
        self._name = name

    def submit(self, task: _Task) -> None:
        """Run `task` on a worker thread; it must not raise (wrap it to record errors)."""
        with self._lock:
            reuse = self._idle_workers > 0
            if reuse:
                self._idle_workers -= 1
        self._tasks.put(task)
        if not reuse:
            threading.Thread(target=self._work, daemon=True, name=self._name).start()

    def _work(self) -> None:
        while True:
            try:
                task = self._tasks.get(timeout=self._idle)
            except queue.Empty:
                with self._lock:
                    if self._idle_workers > 0:
                        self._idle_workers -= 1
                        return  # idle long enough, and no queued task counts on this worker
                continue  # a submit handed us a task just as the wait ended: take it
            with contextlib.suppress(Exception):  # tasks record their own errors
                task()
            with self._lock:
                self._idle_workers += 1
