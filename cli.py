"""The toolkit's command line: ``python cli.py COMMAND`` or, once installed, ``cli COMMAND``.

The commands live in ``commands/`` (one module per area, each with a ``register(app)``); this
file only joins the modules listed below into one Typer app. Building the app only declares
commands: heavy imports (torch and friends) happen inside the commands.
"""

from __future__ import annotations

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

# In the order ``cli --help`` lists them.
COMMAND_MODULES = (
    attention,
    data,
    evaluate,
    models,
    train,
    train_all,
    fid,
    gan,
    synthesize,
    compare,
    explain,
    study,
)


def build_app() -> typer.Typer:
    app = typer.Typer(
        help="GAN data augmentation for small image-classification sets: attention ResNets, "
        "a conditional DCGAN, FID/KID, Grad-CAM and honest comparisons.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    for module in COMMAND_MODULES:
        module.register(app)
    return app


app = build_app()

if __name__ == "__main__":
    app()
