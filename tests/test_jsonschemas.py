"""The committed JSON Schemas match the models, are valid draft 2020-12, and agree with the models."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.protocols import Validator
from pydantic import ValidationError

from gitops_flags import jsonschemas
from gitops_flags.cli import main
from gitops_flags.jsonschemas import KINDS, Kind
from gitops_flags.model import Flag

REPO = Path(__file__).resolve().parents[1]
EXAMPLES: dict[Kind, list[Path]] = {
    "flag": sorted(p for p in REPO.glob("flags/**/*.yaml") if p.parent.name != "schemas"),
    "schema": sorted(REPO.glob("flags/schemas/*.yaml")),
    "policy": [REPO / ".github" / "gitops-flags.yml"],
}


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_matches_the_models(kind: Kind) -> None:
    committed = jsonschemas.committed_text(kind)
    assert committed == jsonschemas.render(kind), (
        f"gitops_flags/jsonschema/{kind}.json is out of date with the models; "
        "regenerate it with `python -m gitops_flags.jsonschemas --write`")


@pytest.mark.parametrize("kind", KINDS)
def test_schema_is_valid_draft_2020_12_with_id_and_title(kind: Kind) -> None:
    schema = jsonschemas.generate(kind)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"urn:gitops-flags:{kind}:v1" and kind in schema["title"]
    assert schema["additionalProperties"] is False


@pytest.mark.parametrize("draft", [Draft202012Validator, Draft7Validator])
@pytest.mark.parametrize("kind", KINDS)
def test_examples_satisfy_the_json_schema(kind: Kind, draft: type[Validator]) -> None:
    # Draft-07 too: the YAML language server behind most editors implements draft-07 and below, and the
    # generated schemas use only keywords that mean the same there.
    validator = draft(jsonschemas.generate(kind))
    assert EXAMPLES[kind]
    for path in EXAMPLES[kind]:
        # Editors read YAML 1.2, where an unquoted timestamp is text; do the same here.
        data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        assert list(validator.iter_errors(data)) == [], path


@pytest.mark.parametrize("draft", [Draft202012Validator, Draft7Validator])
def test_json_schema_rejects_what_the_model_rejects(draft: type[Validator]) -> None:
    validator = draft(jsonschemas.generate("flag"))
    flag: dict[str, Any] = {"key": "x", "type": "boolean", "variants": {"on": True}, "default_variant": "on"}
    assert validator.is_valid(flag)
    assert not validator.is_valid({**flag, "colour": "red"})
    rule: dict[str, Any] = {"when": {"attribute": "a", "operator": "endswith", "value": 1}, "variant": "on"}
    assert not validator.is_valid({**flag, "environments": {"p": {"enabled": True, "rules": [rule]}}})
    assert not validator.is_valid({**flag, "schema": 3})


@pytest.mark.parametrize("environment", [
    {"enabled": "yes"}, {"enabled": 1},
    {"enabled": True, "rollout": {"variant": "on", "stages": [True, 100]}},
    {"enabled": True, "rollout": {"variant": "on", "stages": ["5", 100]}},
    {"enabled": True, "rollout": {"variant": "on", "paused": 0}},
])
def test_the_model_rejects_what_the_json_schema_rejects(environment: dict[str, Any]) -> None:
    # No lax coercion in the model: a value an editor marks as wrong is never quietly accepted by validate.
    flag: dict[str, Any] = {"key": "x", "type": "boolean", "variants": {"on": True}, "default_variant": "on",
                            "environments": {"p": environment}}
    assert not Draft202012Validator(jsonschemas.generate("flag")).is_valid(flag)
    with pytest.raises(ValidationError):
        Flag.model_validate(flag)


def test_generate_refuses_an_unknown_kind() -> None:
    with pytest.raises(ValueError, match="unknown kind 'flags'"):
        jsonschemas.generate("flags")  # type: ignore[arg-type]


def test_check_mode_passes_when_up_to_date(capsys: pytest.CaptureFixture[str]) -> None:
    assert jsonschemas.main([]) == 0
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("kind", KINDS)
def test_schema_command_prints_the_committed_schema(kind: Kind, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    out = capsys.readouterr().out
    assert out == jsonschemas.committed_text(kind)
    assert json.loads(out)["$id"] == f"urn:gitops-flags:{kind}:v1"


def test_schema_command_rejects_an_unknown_kind(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "flags"]) == 2
    assert "'flags' is not one of 'flag', 'schema', 'policy'" in capsys.readouterr().err
