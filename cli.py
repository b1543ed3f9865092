"""The toolkit's command line: ``python cli.py COMMAND`` or, once installed, ``cli COMMAND``.

Commands live next to the code they drive (``classify/commands_*.py``, ``augment/commands_*.py``,
``study/commands_*.py``,
each with a ``register(app)``); this file only joins them into one Typer app. Building the app only
declares commands: heavy imports (torch and friends) happen inside the commands.
"""

from __future__ import annotations

import typer


def build_app() -> typer.Typer:
    from augment.commands import register as register_augment
    from classify.commands import register as register_classify
    from study.commands import register as register_study

    app = typer.Typer(
        help="GAN data augmentation for small image-classification sets: attention ResNets, "
        "a conditional DCGAN, FID/KID, Grad-CAM and honest comparisons.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    register_classify(app)
    register_augment(app)
    register_study(app)
    return app


app = build_app()

if __name__ == "__main__":
    app()
