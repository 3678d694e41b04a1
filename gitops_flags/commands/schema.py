"""`gitops-flags schema KIND`: print the JSON Schema of a file kind for editors and other tools."""

from __future__ import annotations

import click

from ..jsonschemas import KINDS, Kind, committed_text


@click.command(name="schema")
@click.argument("kind", type=click.Choice(KINDS), metavar="KIND")
def command(kind: Kind) -> int:
    """Print the JSON Schema (draft 2020-12) of KIND: flag, schema or policy.

    Save it where your editor can find it and point the files at it with a modeline, for example:

    \b
        gitops-flags schema flag > .schemas/flag.json
        # yaml-language-server: $schema=../.schemas/flag.json
    """
    click.echo(committed_text(kind), nl=False)
    return 0
