"""Named presets of a config dataclass: one mechanism for the classifier, GAN and pipeline presets.

A preset is a dict of field overrides (``name -> {field: value}``); applying one gives the config
with the preset's values, then the values the user set explicitly on top, so an explicit option
always wins over the preset, and the preset over the dataclass defaults. The name ``none`` applies
no preset: the dataclass defaults alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from core.errors import UserError

C = TypeVar("C")

NO_PRESET = "none"  # the preset name that applies nothing: the dataclass defaults alone


@dataclass(frozen=True)
class Presets:
    """Named overrides of one config dataclass's defaults."""

    table: Mapping[str, Mapping[str, Any]]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.table)

    @property
    def choices(self) -> tuple[str, ...]:
        """What ``--preset`` takes: the presets' names, then ``none``."""
        return (*self.names, NO_PRESET)

    def overrides(self, name: str | None) -> dict[str, Any]:
        """The fields preset ``name`` sets (none for ``None``, "" or ``none``); an unknown name is a
        one-line :class:`UserError`."""
        if not name or name == NO_PRESET:
            return {}
        if name not in self.table:
            raise UserError(f"--preset {name!r}: choose one of {', '.join(self.choices)}")
        return dict(self.table[name])

    def apply(self, config: C, name: str | None, explicit: Mapping[str, Any] | None = None) -> C:
        """``config`` with preset ``name`` applied, then every ``explicit`` value that is not None
        (a dataclass replace, so frozen configs work too)."""
        given = {k: v for k, v in (explicit or {}).items() if v is not None}
        return replace(config, **{**self.overrides(name), **given})  # type: ignore[type-var]

    def describe(self, name: str) -> str:
        """``field=value, ...`` for ``--help``."""
        return ", ".join(f"{k}={v}" for k, v in self.table[name].items())
