"""The Typer application every command module registers on."""

import typer

from ganfp import __version__

app = typer.Typer(
    name="ganfp",
    help="Find which real images trained a generative model (ImageCLEFmedical GANs), "
    "and reproduce the KDE-lab multi-stage transfer-learning chain.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        typer.echo(f"ganfp {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print ganfp's version and exit."),
) -> None:
    # the options of `ganfp` itself, before any command (a bug report starts with the version)
    pass
