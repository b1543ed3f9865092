"""What every command shares: user errors (a failed write among them) and warnings as one line
each, exit code 2; SIGTERM handled as Ctrl-C, exit code 143."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from core.distributed import SharedError, is_main
from core.errors import UserError
from core.interrupts import exit_status, sigterm_as_interrupt, stopped_by, terminated
from core.io import NO_SPACE, REFUSED, WRITE_HINT, write_error
from core.progress import err_console
from core.ranks import finish

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def user_errors(func: F) -> F:
    """Turn :class:`UserError` into ``error: <message>`` on stderr and exit code 2; warnings are
    printed as one yellow line each. A full disk or a refused write that reached no writer of
    :mod:`core.io` is such an error too. SIGTERM stops the command as Ctrl-C does
    (:func:`core.interrupts.sigterm_as_interrupt`), and its exit code is 143 where Ctrl-C's is
    130. In a multi-process run the ranks other than 0 print only their own errors (no warnings,
    not rank 0's refusals that they share), and after a command that succeeded every rank waits
    for the others before leaving the process group."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught, sigterm_as_interrupt():
            warnings.simplefilter("always", UserWarning)
            try:
                result = func(*args, **kwargs)
                finish()  # every rank done: leave the process group together
                return result
            except UserError as exc:
                if not isinstance(exc, SharedError) or is_main():
                    _error_line(str(exc))
                raise typer.Exit(2) from None
            except OSError as exc:
                if exc.errno not in NO_SPACE | REFUSED:
                    raise
                path = exc.filename or exc.filename2
                _error_line(str(write_error(path, exc)) if path else f"{exc}: {WRITE_HINT}")
                raise typer.Exit(2) from None
            except typer.Exit as stop:
                if stop.exit_code == 130:  # a command's "interrupted": by Ctrl-C or by SIGTERM
                    raise typer.Exit(exit_status()) from None
                raise
            except KeyboardInterrupt:
                if not terminated():
                    raise
                if is_main():
                    err_console.print(
                        "[yellow]terminated (SIGTERM)[/yellow]: stopped before anything was "
                        "left half-written (files are replaced atomically); run the command "
                        "again",
                        highlight=False,
                        soft_wrap=True,
                    )
                raise typer.Exit(exit_status()) from None
            finally:
                for item in caught if is_main() else ():
                    if issubclass(item.category, UserWarning):
                        err_console.print(
                            f"[yellow]warning:[/yellow] {escape(str(item.message))}",
                            highlight=False,
                            soft_wrap=True,
                        )

    return wrapper  # type: ignore[return-value]


def _error_line(message: str) -> None:
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def one_process(command: str) -> Callable[[F], F]:
    """For a command that runs in one process only: started by torchrun with several processes,
    it refuses with one line (printed by rank 0; every rank exits with code 2) before doing
    anything, rather than every process writing the same files."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from core.distributed import launched_world_size, refuse

            if launched_world_size() > 1:
                refuse(
                    f"cli {command} runs in one process (WORLD_SIZE={launched_world_size()}): "
                    f"start it without torchrun, e.g. `python cli.py {command} ...`; the "
                    "commands that run on several processes are train, train-all, evaluate, "
                    "gan-train, cas and pipeline"
                )
            return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def exit_on_interrupt(job: Callable[[], T], hint: str | None = None) -> T:
    """Run a long job; after Ctrl-C or SIGTERM print what it saved and how to resume, then exit
    with 130 (Ctrl-C) or 143 (SIGTERM)."""
    from core.interrupts import RunInterrupted

    try:
        return job()
    except RunInterrupted as stop:
        if is_main():  # rank 0 speaks for all the processes of a run
            err_console.print(
                f"[yellow]{escape(stop.message)}[/yellow]", highlight=False, soft_wrap=True
            )
            if hint:
                err_console.print(hint, highlight=False)
        raise typer.Exit(exit_status()) from None


def interrupted_exit() -> typer.Exit:
    """Ctrl-C (or SIGTERM) in a command that writes only finished files: say so; exit code 130
    (143)."""
    err_console.print(
        f"[yellow]{stopped_by()}[/yellow]: nothing half-written (files are replaced "
        "atomically); run the command again",
        highlight=False,
    )
    return typer.Exit(exit_status())
