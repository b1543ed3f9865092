"""``--nproc N``: start a training command as N processes on this machine, for users who do not
want to learn torchrun.

The command line is rebuilt from the options given (``--nproc`` dropped) and handed to
:mod:`torch.distributed.run` in this process, exactly as ``torchrun --standalone
--nproc-per-node N -m cli COMMAND ...`` would run it (c10d rendezvous on a free local port; each
worker a ``python -m cli`` process). This process is then torchrun's agent: it waits, forwards
Ctrl-C to the workers (which stop together after a step and save), stops the others when one dies,
and ends with one line saying what happened instead of torchrun's report.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer

from core.distributed import launched_world_size
from core.errors import UserError
from core.progress import err_console

DROPPED = ("nproc",)  # options the workers must not see


def command_argv(ctx: typer.Context, drop: tuple[str, ...] = DROPPED) -> list[str]:
    """``COMMAND --option value ...`` for the options given to ``ctx`` (defaults left out).
    Parameters are told apart by click's attributes (Typer ships its own copy of click)."""
    argv = [ctx.info_name or ""]
    for param in ctx.command.params:
        name = param.name
        if name is None or name in drop or name not in ctx.params:
            continue
        source = ctx.get_parameter_source(name)
        if source is None or source.name in ("DEFAULT", "DEFAULT_MAP"):
            continue
        value = ctx.params[name]
        values = list(value) if isinstance(value, (list, tuple)) else [value]
        if param.param_type_name == "argument":
            argv += [str(v) for v in values]
        elif getattr(param, "is_flag", False):
            if value:
                argv.append(param.opts[0])
            elif param.secondary_opts:
                argv.append(param.secondary_opts[0])
        elif value is not None:
            for item in values:
                argv += [param.opts[0], str(item)]
    return argv


def launch_workers(ctx: typer.Context, nproc: int) -> bool:
    """With ``nproc`` > 1, run the command as that many processes and return True once they all
    ended well; exit with their status otherwise. False (nothing done) for ``nproc`` 1."""
    if nproc <= 1:
        return False
    if launched_world_size() > 1:
        raise UserError(
            f"--nproc {nproc}: this process was started by torchrun already (WORLD_SIZE="
            f"{launched_world_size()}); drop --nproc"
        )
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(["--standalone", f"--nproc-per-node={nproc}", "-m", "cli",
                       *command_argv(ctx)])  # fmt: skip
    root = str(Path(__file__).resolve().parents[1])  # the workers import this very code
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *[p for p in paths if p != root]])
    try:
        run(args)
    except ChildFailedError as failed:
        raise typer.Exit(_report(failed, ctx)) from None
    except SignalException as stop:  # Ctrl-C or SIGTERM of this process: the workers were told
        raise typer.Exit(128 + int(stop.sigval)) from None  # 130 or 143
    return True


def _report(failed: Any, ctx: typer.Context) -> int:
    """One line for a failed worker group; the exit code to end with."""
    codes = {rank: f.exitcode for rank, f in failed.failures.items()}
    if len(set(codes.values())) == 1 and set(codes.values()) <= {130, 143}:
        return next(iter(codes.values()))  # Ctrl-C or SIGTERM: rank 0 said what it saved
    if all(code in (2, 130, 143) for code in codes.values()):
        return 2  # a refusal: rank 0 printed it
    killed = {r: f for r, f in failed.failures.items() if f.exitcode < 0}
    if killed:  # a rank killed by a signal is the cause; the others failed because of it
        rank = min(killed, key=lambda r: killed[r].timestamp)
        first = killed[rank]
    else:
        rank, first = failed.get_first_failure()
    how = (
        f"was killed by {first.signal_name()}"
        if first.exitcode < 0
        else f"exited with code {first.exitcode} (its messages are above)"
    )
    params = ctx.params
    resume = ""
    if "name" in params and "runs_dir" in params:
        resume = (
            f"; continue with `cli {ctx.info_name} --name {params['name']} "
            f"--runs-dir {params['runs_dir']} --resume`"
        )
    err_console.print(
        f"[red]error:[/red] rank {rank} (pid {first.pid}) {how}; the other processes were "
        f"stopped{resume}",
        highlight=False,
        soft_wrap=True,
    )
    return 1
