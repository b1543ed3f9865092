"""The toolkit's command line: ``python cli.py COMMAND`` or, once installed, ``shoegan COMMAND``
(or ``cli COMMAND``).

The commands live in ``commands/`` (one module per area, each with a ``register(app)``); this
file only joins the modules listed below into one Typer app, gives every command the classes of
:mod:`commands.command`, and lists them in workflow order. Building the app only declares
commands: heavy imports (torch and friends) happen inside the commands.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from commands import (
    attention,
    compare,
    data,
    evaluate,
    explain,
    fid,
    gan,
    models,
    study,
    synthesize,
    train,
    train_all,
)
from commands.command import Command, Group, group_class

COMMAND_MODULES = (
    data,
    train,
    train_all,
    gan,
    synthesize,
    compare,
    study,
    evaluate,
    explain,
    attention,
    fid,
    models,
)

# The panels of ``cli --help`` and their commands, in the order listed: the workflow first.
COMMAND_PANELS = {
    "Workflow": ("data", "train", "train-all", "gan-train", "synthesize", "compare", "pipeline"),
    "Explanations": ("gradcam", "explain", "attention"),
    "Utilities": ("predict", "evaluate", "fid", "cas", "models"),
}
COMMAND_ORDER = tuple(name for names in COMMAND_PANELS.values() for name in names)
PANEL_OF = {name: panel for panel, names in COMMAND_PANELS.items() for name in names}

PACKAGE = "shoegan"


def version() -> str:
    """The installed package's version, else the one pyproject.toml declares (a checkout run as
    ``python cli.py`` without installing)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(PACKAGE)
    except PackageNotFoundError:
        text = (Path(__file__).resolve().parent / "pyproject.toml").read_text(encoding="utf-8")
        found = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE)
        return found.group(1) if found else "unknown"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"{PACKAGE} {version()}")
        raise typer.Exit()


def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", help="Show the version and exit.", callback=_show_version, is_eager=True
        ),
    ] = False,
) -> None:
    """GAN data augmentation for small image-classification sets.

    Attention ResNets and ViTs, a conditional DCGAN, FID/KID, Grad-CAM and honest comparisons.
    """


def build_app() -> typer.Typer:
    app = typer.Typer(
        cls=group_class(COMMAND_ORDER),
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    app.callback()(_root)
    for module in COMMAND_MODULES:
        module.register(app)
    for info in app.registered_commands:
        _ours(info, Command)
    for group in app.registered_groups:
        _ours(group, Group)
        for info in group.typer_instance.registered_commands if group.typer_instance else ():
            _ours(info, Command)
    return app


def _ours(info: Any, default: type) -> None:
    """A command or group Typer would build with its own class gets ours; and its panel."""
    if not (isinstance(info.cls, type) and issubclass(info.cls, (Command, Group))):
        info.cls = default
    info.rich_help_panel = PANEL_OF.get(info.name or "", info.rich_help_panel)


app = build_app()

if __name__ == "__main__":
    app()
