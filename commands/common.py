"""What every command shares: user errors and warnings as one line each, exit code 2."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.markup import escape

from core.distributed import SharedError, is_main
from core.errors import UserError
from core.progress import err_console
from core.ranks import finish

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def user_errors(func: F) -> F:
    """Turn :class:`UserError` into ``error: <message>`` on stderr and exit code 2; warnings are
    printed as one yellow line each. In a multi-process run the ranks other than 0 print only
    their own errors (no warnings, not rank 0's refusals that they share), and after a command
    that succeeded every rank waits for the others before leaving the process group."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                result = func(*args, **kwargs)
                finish()  # every rank done: leave the process group together
                return result
            except UserError as exc:
                if not isinstance(exc, SharedError) or is_main():
                    err_console.print(
                        f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True
                    )
                raise typer.Exit(2) from None
            finally:
                for item in caught if is_main() else ():
                    if issubclass(item.category, UserWarning):
                        err_console.print(
                            f"[yellow]warning:[/yellow] {escape(str(item.message))}",
                            highlight=False,
                            soft_wrap=True,
                        )

    return wrapper  # type: ignore[return-value]


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
    """Run a long job; after Ctrl-C print what it saved and how to resume, then exit with 130."""
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
        raise typer.Exit(130) from None


def interrupted_exit() -> typer.Exit:
    """Ctrl-C in a command that writes only finished files: say so; exit code 130."""
    err_console.print(
        "[yellow]interrupted[/yellow]: nothing half-written (files are replaced "
        "atomically); run the command again",
        highlight=False,
    )
    return typer.Exit(130)
