"""Shared pieces of the command line: one-line errors, the Rich console, progress bars."""

from __future__ import annotations

import functools
import importlib
import pkgutil
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from classify.errors import UserError

F = TypeVar("F", bound=Callable[..., Any])

console = Console()
err_console = Console(stderr=True)


def user_errors(func: F) -> F:
    """Turn :class:`UserError` into ``error: <message>`` on stderr and exit code 2; warnings are
    printed as one yellow line each."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                return func(*args, **kwargs)
            except UserError as exc:
                err_console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
                raise typer.Exit(2) from None
            finally:
                for item in caught:
                    if issubclass(item.category, UserWarning):
                        err_console.print(
                            f"[yellow]warning:[/yellow] {item.message}",
                            highlight=False,
                            soft_wrap=True,
                        )

    return wrapper  # type: ignore[return-value]


def make_progress(*extra_columns: Any, transient: bool = False) -> Progress:
    """A Rich progress bar with count, elapsed time and ETA; callers add a text column for metrics."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *extra_columns,
        TextColumn("{task.fields[info]}"),
        console=err_console,
        transient=transient,
    )


def register_package_commands(app: typer.Typer, package: ModuleType) -> None:
    """Import every ``commands_*`` module of ``package`` and call its ``register(app)``."""
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("commands_"):
            module = importlib.import_module(f"{package.__name__}.{info.name}")
            module.register(app)
