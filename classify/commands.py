"""Joins the classifier commands (each ``classify/commands_*.py`` module) into the app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    import classify
    from classify.cliutil import register_package_commands

    register_package_commands(app, classify)
