"""A config dataclass built from the options a command was given: only the options the user set
override the preset (or the saved run's configuration, for ``--resume``) and the dataclass
defaults, so an option's default is never retyped here.

One field has no option: ``feature_extractor`` (FID, KID and the like) is InceptionV3 on the
command line, since a stand-in network's scores are not FID and could be mistaken for it. The test
suite picks the tiny ``random-conv`` stand-in through the environment variable
:data:`FEATURES_ENV` (:func:`environment_fields`); library callers pass the field directly."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer

from core.presets import Presets

C = TypeVar("C")
R = TypeVar("R")


def given(ctx: typer.Context) -> dict[str, Any]:
    """The options set on the command line (or by environment), not defaulted: name -> value."""
    out = {}
    for name, value in ctx.params.items():
        source = ctx.get_parameter_source(name)
        # Compared by name: Typer ships its own copy of click's ParameterSource enum.
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            out[name] = value
    return out


FEATURES_ENV = "SHOEGAN_TEST_FEATURE_EXTRACTOR"  # e.g. random-conv: for tests and smoke runs


def environment_fields(cls: type) -> dict[str, Any]:
    """``feature_extractor`` from :data:`FEATURES_ENV` when it is set and ``cls`` has that field
    (with a warning: the scores are then not FID), else nothing."""
    name = os.environ.get(FEATURES_ENV)
    if not name or "feature_extractor" not in {f.name for f in fields(cls)}:
        return {}
    warnings.warn(
        f"{FEATURES_ENV}={name}: FID/KID are computed on that network's features, not "
        "InceptionV3's; the numbers are for tests, not FID",
        stacklevel=2,
    )
    return {"feature_extractor": name}


def config_values(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that name fields of dataclass ``cls``, as the fields hold them:
    paths as strings, a comma-separated option as a tuple where the field is one."""
    assert is_dataclass(cls), cls
    out: dict[str, Any] = {}
    for field in fields(cls):
        if field.name not in values:
            continue
        value = values[field.name]
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, str) and isinstance(field.default, tuple):
            value = tuple(p.strip() for p in value.split(",") if p.strip())
        out[field.name] = value
    return out


def config_from(
    cls: type[C],
    ctx: typer.Context,
    *,
    base: C | None = None,
    presets: Presets | None = None,
    preset: str | None = None,
) -> C:
    """``base`` (default: ``cls()``) with ``preset`` applied, then the options the user gave that
    are fields of ``cls``: an option left at its default never overrides the preset or ``base``."""
    start = cls() if base is None else base
    values = {**config_values(cls, given(ctx)), **environment_fields(cls)}
    return (presets or Presets({})).apply(start, preset, values)


def config_of(cls: type[C], ctx: typer.Context, **fixed: Any) -> C:
    """``cls`` built from every option value (given or default) that is one of its fields (and
    :func:`environment_fields`)."""
    return cls(**{**config_values(cls, ctx.params), **environment_fields(cls), **fixed})


def run_training(
    job: Callable[..., R], cls: type, presets: Presets, ctx: typer.Context
) -> R | None:
    """Run a training command: ``job(cfg, resume=, overwrite=, progress=, dist=)`` where ``cfg``
    is, with ``--resume``, the run's saved configuration with the options given on top (the
    trainer refuses changes to what may not change), otherwise ``--preset`` (or the defaults) with
    the options given; ``dist`` the multi-process options (:class:`core.distributed.DistConfig`).
    Ctrl-C ends it with the trainer's message and exit code 130. With ``--nproc N`` > 1 the
    command is started N times through torch.distributed.run instead, and None returned (rank 0
    of those printed the result)."""
    from dataclasses import replace

    from commands.common import exit_on_interrupt
    from commands.launch import launch_workers
    from core.distributed import DistConfig

    dist = config_of(DistConfig, ctx).validate()
    if launch_workers(ctx, dist.nproc):
        return None
    p = ctx.params
    if p["resume"]:
        from core.resume import saved_config
        from core.rundir import RunDir

        run_dir = p["runs_dir"] / p["name"]
        RunDir.at(run_dir).check(resume=True, overwrite=p["overwrite"])
        cfg = config_from(cls, ctx, base=cls.from_dict(saved_config(run_dir)))  # type: ignore[attr-defined]
        cfg = replace(cfg, name=p["name"], runs_dir=str(p["runs_dir"]))
    else:
        cfg = config_from(cls, ctx, presets=presets, preset=p["preset"])
    flags = {k: p[k] for k in ("resume", "overwrite", "progress")}
    return exit_on_interrupt(lambda: job(cfg, **flags, dist=dist))
