"""What every command shares: user errors and warnings as one line each, exit code 2."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from core.errors import UserError
from core.progress import err_console

F = TypeVar("F", bound=Callable[..., Any])


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
