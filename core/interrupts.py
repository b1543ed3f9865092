"""Ctrl-C that never lands in the middle of a training step.

A KeyboardInterrupt raised halfway through a step could leave some BatchNorm buffers or some
parameters updated and others not; a checkpoint of that state could not be resumed exactly. Inside
:meth:`InterruptGuard.critical` the first Ctrl-C (SIGINT) is therefore only recorded and raised as a
KeyboardInterrupt when the section ends, at a consistent state. A second Ctrl-C raises at once
(the way out of a hung step); the guard then marks the state ``dirty`` so the caller does not save
it. Outside critical sections Ctrl-C behaves as usual. Signal handlers can only be installed from
the main thread; elsewhere the guard just tracks sections (no SIGINT reaches other threads). A
process that was started with SIGINT ignored keeps ignoring it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any


class InterruptGuard:
    """Context manager installing the deferring SIGINT handler; see the module docstring."""

    def __init__(self, on_deferred: Callable[[], None] | None = None) -> None:
        self.on_deferred = on_deferred  # e.g. print "finishing the current step..."
        self.pending = False
        self.dirty = False
        self._depth = 0
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> InterruptGuard:
        # A process started with SIGINT ignored (nohup, `cmd &` in a script) stays immune to it.
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN
        ):
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
            self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth > 0 and not self.pending:
            self.pending = True
            if self.on_deferred is not None:
                self.on_deferred()
            return
        raise KeyboardInterrupt

    def critical(self) -> _Critical:
        """A section that Ctrl-C does not interrupt (the first time)."""
        return _Critical(self)


class _Critical:
    def __init__(self, guard: InterruptGuard) -> None:
        self.guard = guard

    def __enter__(self) -> None:
        self.guard._depth += 1

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        guard = self.guard
        guard._depth -= 1
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            guard.dirty = True  # raised inside the section: its work is half done
        elif exc_type is None and guard.pending and guard._depth == 0:
            guard.pending = False
            raise KeyboardInterrupt


class RunInterrupted(KeyboardInterrupt):
    """A long job stopped by Ctrl-C; ``message`` says what was saved and how to resume."""

    def __init__(self, message: str, run_dir: Path, saved: bool) -> None:
        super().__init__(message)
        self.message = message
        self.run_dir = run_dir
        self.saved = saved
