"""Joins the study commands (each ``study/commands_*.py`` module) into the app."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    import study
    from classify.cliutil import register_package_commands

    register_package_commands(app, study)
