"""The Typer application every command module registers on."""

import typer

app = typer.Typer(
    name="ganfp",
    help="Find which real images trained a generative model (ImageCLEFmedical GANs), "
    "and reproduce the KDE-lab multi-stage transfer-learning chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
