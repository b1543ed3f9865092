"""Ctrl-C and SIGTERM that never land in the middle of a training step.

A KeyboardInterrupt raised halfway through a step could leave some BatchNorm buffers or some
parameters updated and others not; a checkpoint of that state could not be resumed exactly. Inside
:meth:`InterruptGuard.critical` the first Ctrl-C (SIGINT) is therefore only recorded and raised as a
KeyboardInterrupt when the section ends, at a consistent state. A second Ctrl-C raises at once
(the way out of a hung step); the guard then marks the state ``dirty`` so the caller does not save
it. Outside critical sections Ctrl-C behaves as usual. Signal handlers can only be installed from
the main thread; elsewhere the guard just tracks sections (no signal reaches other threads). A
process that was started with a signal ignored keeps ignoring it.

SIGTERM, what Slurm and other schedulers send before they kill a preempted job (and what torchrun
forwards to its workers), is handled as the first Ctrl-C: the run stops at the next step boundary,
saves and says how to resume. A repeated SIGTERM is ignored rather than treated as a second
Ctrl-C: a scheduler may signal every process of a job while torchrun forwards the same signal
again, and its own way to insist is SIGKILL. :func:`sigterm_as_interrupt` makes SIGTERM a
KeyboardInterrupt outside the guards too (a command's whole lifetime), so ``finally`` blocks
release locks; :func:`exit_status` is then 143 (128 + 15) rather than Ctrl-C's 130.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

# The stop signals received since the current command (or guarded run) began. Signals are
# delivered to the process, so this record is the process's too.
_received: set[int] = set()


def _note(signum: int) -> bool:
    """Record ``signum``; True when it is a repeated SIGTERM (to be ignored: already stopping)."""
    repeated = signum == signal.SIGTERM and signum in _received
    _received.add(signum)
    return repeated


def terminated() -> bool:
    """True once SIGTERM has reached the current command (or guarded run)."""
    return signal.SIGTERM in _received


def exit_status() -> int:
    """The exit code of a job stopped by a signal: 143 after SIGTERM, 130 after Ctrl-C."""
    return 128 + (signal.SIGTERM if terminated() else signal.SIGINT)


def stopped_by() -> str:
    """How a stop message begins: ``terminated (SIGTERM)`` or ``interrupted``."""
    return "terminated (SIGTERM)" if terminated() else "interrupted"


def _install(handler: Callable[[int, FrameType | None], None], signums: tuple[int, ...]) -> dict:
    """Install ``handler`` for each of ``signums`` not ignored (main thread only); the previous
    handlers, to :func:`_restore`."""
    previous: dict[int, Any] = {}
    if threading.current_thread() is not threading.main_thread():
        return previous
    for signum in signums:
        current = signal.getsignal(signum)
        if current is signal.SIG_IGN or current is None:  # ignored, or a handler set from C
            continue
        previous[signum] = signal.signal(signum, handler)
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside (a command's lifetime), SIGTERM raises KeyboardInterrupt as Ctrl-C does, once:
    repeats are ignored while the job cleans up. Starts a fresh record for :func:`exit_status`."""
    _received.clear()

    def handle(signum: int, frame: FrameType | None) -> None:
        if not _note(signum):
            raise KeyboardInterrupt

    previous = _install(handle, (signal.SIGTERM,))
    try:
        yield
    finally:
        _restore(previous)


class InterruptGuard:
    """Context manager installing the deferring SIGINT / SIGTERM handler; see the module
    docstring."""

    def __init__(self, on_deferred: Callable[[], None] | None = None) -> None:
        self.on_deferred = on_deferred  # e.g. print "finishing the current step..."
        self.pending = False
        self.dirty = False
        self._depth = 0
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> InterruptGuard:
        _received.clear()  # a run begins: earlier signals already stopped whatever they reached
        self._previous = _install(self._dispatch, STOP_SIGNALS)
        return self

    def __exit__(self, *exc: object) -> None:
        _restore(self._previous)
        self._previous = {}

    def _dispatch(self, signum: int, frame: FrameType | None) -> None:
        if not _note(signum):
            self._handle(signum, frame)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._depth > 0 and not self.pending:
            self.pending = True
            if self.on_deferred is not None:
                self.on_deferred()
            return
        if signum == signal.SIGTERM and self.pending:
            return  # a Ctrl-C already asked for the stop at the end of this step
        raise KeyboardInterrupt

    def critical(self) -> _Critical:
        """A section that Ctrl-C (the first time) and SIGTERM do not interrupt."""
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
    """A long job stopped by Ctrl-C or SIGTERM; ``message`` says what was saved and how to
    resume."""

    def __init__(self, message: str, run_dir: Path, saved: bool) -> None:
        super().__init__(message)
        self.message = message
        self.run_dir = run_dir
        self.saved = saved
