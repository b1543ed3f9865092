"""The click classes behind every command of the app (``cli.py`` assigns them): help written for
Rich panels, old option spellings kept for a version, presets shown in the defaults.

- Help paragraphs rewrap: a docstring's single line breaks are joined, blank lines separate
  paragraphs, and the first paragraph is what the command list shows.
- Flags show no value type (no ``<bool>`` beside ``--resume`` or ``--help``).
- An option renamed for consistency keeps its old spelling for one version: the old name is
  rewritten to the new one before parsing, with a one-line deprecation note on stderr, and is
  listed nowhere in ``--help`` (:func:`command_class` declares them per command).
- Where a command takes ``--preset``, an option a preset sets shows each preset's value as its
  default (the option's own default is what ``--preset none`` keeps).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from typer.core import TyperCommand, TyperGroup

from core.presets import NO_PRESET, Presets


def rewrap(text: str | None) -> str | None:
    """``text`` with the line breaks inside each paragraph joined, so that Rich wraps the
    paragraphs to the terminal; a paragraph starting with ``\\b`` is kept as written."""
    if not text:
        return text
    paragraphs = inspect.cleandoc(text).split("\n\n")
    return "\n\n".join(
        p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
        for p in paragraphs
    )


def hide_flag_type(param: Any) -> None:
    """A flag takes no value: show no ``<bool>`` type beside it."""
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""


# An argument's name (RUN, IMAGES) says what it is; its type column says only that it is a path.
ARGUMENT_TYPES = {"<str>": None, "<list[str]>": None, "<list[Path]>": "<path>..."}


def plain_argument_type(param: Any) -> None:
    """Show ``<path>`` or ``<path>...`` beside an argument, or nothing for a name."""
    shown = param.display_type_rich

    def display_type_rich(ctx: Any) -> str | None:
        label = shown(ctx)
        return ARGUMENT_TYPES.get(label, label)

    param.display_type_rich = display_type_rich


def deprecation_note(old: str, new: str) -> None:
    """The one line an old option spelling prints (rank 0 only, under torchrun)."""
    from core.distributed import is_main
    from core.progress import err_console

    if is_main():
        err_console.print(
            f"[yellow]warning:[/yellow] {old} is deprecated, use {new}",
            highlight=False,
            soft_wrap=True,
        )


def rename_args(args: Sequence[str], renamed: Mapping[str, str]) -> list[str]:
    """``args`` with every old option spelling (``--old`` or ``--old=VALUE``) replaced by its new
    one, noting each once; nothing after ``--`` is touched."""
    out: list[str] = []
    noted: set[str] = set()
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        new = renamed.get(name) if name.startswith("--") else None
        if new is not None:
            if name not in noted:
                deprecation_note(name, new)
                noted.add(name)
            arg = new + eq + value
        out.append(arg)
    return out


def preset_default(presets: Presets, fallback: Any, param: Any) -> str | None:
    """``quick: 32, full/none: 64``: the value of a field under each ``--preset`` choice (None
    when every choice gives the option's own default)."""

    def show(value: Any) -> str:
        if isinstance(value, bool) and param.secondary_opts:
            return (param.opts[0] if value else param.secondary_opts[0]).lstrip("-")
        return str(value)

    grouped: dict[str, list[str]] = {}
    for name in presets.choices:
        value = presets.table[name].get(param.name, fallback) if name != NO_PRESET else fallback
        grouped.setdefault(show(value), []).append(name)
    if len(grouped) == 1:
        return None
    return ", ".join(f"{'/'.join(names)}: {value}" for value, names in grouped.items())


class Command(TyperCommand):
    """A command with help for Rich panels, its renamed options and its presets' defaults."""

    renamed: ClassVar[Mapping[str, str]] = {}  # old option spelling -> the current one
    presets: ClassVar[Presets | None] = None  # what --preset chooses from, if the command has it

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = rewrap(self.help)
        presets = self.presets
        fields = {f for table in presets.table.values() for f in table} if presets else set()
        for param in self.params:
            hide_flag_type(param)
            if param.param_type_name == "argument":
                plain_argument_type(param)
            # An option whose own default is None explains its default in its help.
            if presets and param.name in fields and param.default is not None:
                shown = preset_default(presets, param.default, param)
                param.show_default = param.show_default if shown is None else shown

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rename_args(args, self.renamed))

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            hide_flag_type(option)
        return option


def command_class(
    *, renamed: Mapping[str, str] | None = None, presets: Presets | None = None
) -> type[Command]:
    """A :class:`Command` with old option spellings (``{"--old": "--new"}``) and the presets its
    ``--preset`` chooses from."""
    return type("Command", (Command,), {"renamed": dict(renamed or {}), "presets": presets})


class Group(TyperGroup):
    """A group listing its commands in ``order`` (the others after them, as registered), with
    help for Rich panels."""

    order: ClassVar[tuple[str, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.help = rewrap(self.help)
        for param in self.params:
            hide_flag_type(param)

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(self.order)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))

    def get_help_option(self, ctx: Any) -> Any:
        option = super().get_help_option(ctx)
        if option is not None:
            hide_flag_type(option)
        return option


def group_class(order: Sequence[str]) -> type[Group]:
    """A :class:`Group` that lists its commands in ``order``."""
    return type("Group", (Group,), {"order": tuple(order)})
