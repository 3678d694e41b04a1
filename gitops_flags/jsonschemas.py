"""JSON Schemas of the three file kinds, generated from the pydantic models.

The generated schemas are committed under `gitops_flags/jsonschema/` so that editors can validate as
people type (`# yaml-language-server: $schema=...`) and `gitops-flags schema KIND` can print them without
generating anything. A test fails when the committed files drift from the models; regenerate with
`python -m gitops_flags.jsonschemas --write`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from .model import Flag, Policy, SchemaDoc

Kind = Literal["flag", "schema", "policy"]
KINDS: tuple[Kind, ...] = ("flag", "schema", "policy")
DRAFT = "https://json-schema.org/draft/2020-12/schema"

_MODELS: dict[Kind, type[BaseModel]] = {"flag": Flag, "schema": SchemaDoc, "policy": Policy}
_TITLES: dict[Kind, str] = {
    "flag": "gitops-flags flag file (flags/**/<key>.yaml)",
    "schema": "gitops-flags schema file (flags/schemas/<name>.yaml)",
    "policy": "gitops-flags policy file (.github/gitops-flags.yml)",
}


def generate(kind: Kind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one file kind, as the models define it."""
    if kind not in _MODELS:
        raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
    body = _MODELS[kind].model_json_schema(by_alias=True, mode="validation")
    # No public URL hosts these files, so the id is a URN: it names the schema without pretending to be
    # fetchable, and the `#/$defs/...` references resolve against it.
    head: dict[str, Any] = {"$schema": DRAFT, "$id": f"urn:gitops-flags:{kind}:v1", "title": _TITLES[kind]}
    body.pop("title", None)
    return {**head, **body}


def render(kind: Kind) -> str:
    """The text committed for `kind`: stable key order, two-space indent, trailing newline."""
    return json.dumps(generate(kind), indent=2, ensure_ascii=False) + "\n"


def committed_path(kind: Kind) -> Path:
    return Path(str(resources.files("gitops_flags") / "jsonschema" / f"{kind}.json"))


def committed_text(kind: Kind) -> str:
    """The schema shipped with the package (what `gitops-flags schema KIND` prints)."""
    return (resources.files("gitops_flags") / "jsonschema" / f"{kind}.json").read_text(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gitops_flags.jsonschemas",
        description="Check (default) or rewrite the committed JSON Schemas against the models.",
    )
    parser.add_argument("--write", action="store_true", help="rewrite the committed files")
    args = parser.parse_args(argv)
    stale = []
    for kind in KINDS:
        path = committed_path(kind)
        text = render(kind)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.write:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
        else:
            stale.append(str(path))
    if stale:
        print("out of date (run `python -m gitops_flags.jsonschemas --write`): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
