"""`gitops-flags validate`: output formats, exit codes, repository discovery, PATHS; the pre-commit hook."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml

from gitops_flags.cli import main

REPO = Path(__file__).resolve().parents[1]

POLICY = """\
version: 1
environments: [staging, production]
rules: [{match: {kind: flag}, workflow: owners}]
workflows:
  owners:
    steps: [{id: owner, role: codeowner}]
"""
GOOD = 'key: good\ntype: boolean\nvariants: {"on": true, "off": false}\ndefault_variant: "off"\n'
ALLOWED = "key, name, description, owner, tags, type, schema, variants, default_variant, environments"
Capture = pytest.CaptureFixture[str]
BAD = "key: bad\ntype: boolean\ncolour: red\nvariants: {\"on\": true}\ndefault_variant: of\n"


def make_repo(root: Path, files: dict[str, str]) -> Path:
    for rel, text in {".github/gitops-flags.yml": POLICY, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["validate", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_example_repository_passes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "-C", str(REPO))
    assert code == 0
    assert re.fullmatch(r"ok: 1\d flag files, 2 schema files and the policy checked, no problems\n", out)


def test_text_format_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {"flags/good.yaml": GOOD, "flags/team/bad.yaml": BAD})
    code, out, _ = run(capsys, "-C", str(tmp_path))
    assert code == 1
    assert out.splitlines() == [
        f"flags/team/bad.yaml:3:1: error: unknown field 'colour' (allowed: {ALLOWED})",
        # the structural error does not hide the semantic one (issue 13: one run shows every problem)
        "flags/team/bad.yaml:5:1: error: default_variant: variant 'of' is not defined (variants: on)",
        "2 errors, 0 warnings (2 flag files, 0 schema files and the policy checked)",
    ]


def test_semantic_errors_after_the_model_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {"flags/bad.yaml": BAD.replace("colour: red\n", "")})
    code, out, _ = run(capsys, "-C", str(tmp_path))
    assert code == 1
    assert out.splitlines()[0] == ("flags/bad.yaml:4:1: error: default_variant: variant 'of' is not defined "
                                   "(variants: on)")


def test_warnings_alone_exit_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {"flags/good.yaml": GOOD + "description: x\ntags: [1e3]\n"})
    code, out, _ = run(capsys, "-C", str(tmp_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("flags/good.yaml:6:8: warning: `1e3` is read as ")
    assert lines[1] == "0 errors, 1 warning (1 flag file, 0 schema files and the policy checked)"


def test_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {"flags/bad.yaml": BAD})
    code, out, _ = run(capsys, "-C", str(tmp_path), "--format", "json")
    assert code == 1
    assert json.loads(out) == [{
        "file": "flags/bad.yaml", "line": 3, "col": 1, "severity": "error", "title": "unknown-field",
        "message": f"unknown field 'colour' (allowed: {ALLOWED})",
    }, {
        "file": "flags/bad.yaml", "line": 5, "col": 1, "severity": "error", "title": "unknown-variant",
        "message": "default_variant: variant 'of' is not defined (variants: on)",
    }]
    make_repo(tmp_path, {"flags/bad.yaml": GOOD.replace("good", "bad")})
    assert run(capsys, "-C", str(tmp_path), "--format", "json") == (0, "[]\n", "")


def test_github_format_escapes_data_and_properties(tmp_path: Path, capsys: Capture) -> None:
    make_repo(tmp_path, {"flags/a,b:c.yaml": GOOD.replace("key: good", 'key: good\n"50%\\r\\nx": 1'),
                         "flags/good.yaml": GOOD.replace("key: good", "key: good.yaml")})
    code, out, _ = run(capsys, "-C", str(tmp_path), "--format", "github")
    assert code == 1
    assert out.splitlines() == [
        "::error file=flags/a%2Cb%3Ac.yaml,title=gitops-flags%3A unportable-path::'a,b:c.yaml' holds ':', "
        "which Windows does not allow in a file name: some checkouts cannot hold this path",
        "::error file=flags/a%2Cb%3Ac.yaml,line=1,col=1,title=gitops-flags%3A key-mismatch::key: the key "
        "'good' differs from the file name; rename the file to good.yaml or set key: a,b:c",
        "::error file=flags/a%2Cb%3Ac.yaml,line=2,col=1,title=gitops-flags%3A unknown-field::unknown field "
        f"'50%25%0D%0Ax' (allowed: {ALLOWED})",
        "::error file=flags/good.yaml,line=1,col=1,title=gitops-flags%3A key-mismatch::key: the key "
        "'good.yaml' differs from the file name; rename the file to good.yaml.yaml or set key: good",
        "4 errors, 0 warnings (2 flag files, 0 schema files and the policy checked)",
    ]


def test_github_format_keeps_problems_beyond_the_annotation_limit_as_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one_error = BAD.replace("default_variant: of", 'default_variant: "on"')
    make_repo(tmp_path, {f"flags/f{i:02}.yaml": one_error.replace("key: bad", f"key: f{i:02}")
                         for i in range(12)})
    code, out, _ = run(capsys, "-C", str(tmp_path), "--format", "github")
    lines = out.splitlines()
    assert code == 1 and len(lines) == 13
    assert all(line.startswith("::error file=flags/f0") for line in lines[:10])
    assert lines[10].startswith("flags/f10.yaml:3:1: error: unknown field 'colour'")
    assert lines[12] == "12 errors, 0 warnings (12 flag files, 0 schema files and the policy checked)"


def test_missing_policy_exits_2_with_a_clear_message(tmp_path: Path, capsys: Capture) -> None:
    (tmp_path / ".git").mkdir()
    code, out, err = run(capsys, "-C", str(tmp_path))
    assert code == 2
    assert out.splitlines()[0] == (".github/gitops-flags.yml: error: the policy file is missing; every flag "
                                   "repository needs one (`gitops-flags init` writes a starter)")
    assert err == ("error: cannot validate without a valid policy file (.github/gitops-flags.yml in "
                   f"{tmp_path})\n")


def test_invalid_policy_exits_2_and_shows_where(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {".github/gitops-flags.yml": POLICY.replace("version: 1", "version: 2"),
                         "flags/good.yaml": GOOD})
    code, out, err = run(capsys, "-C", str(tmp_path))
    assert code == 2
    assert out.startswith(".github/gitops-flags.yml:1:1: error: version: 2 is not allowed (allowed: 1)\n")
    assert "cannot validate without a valid policy file" in err


def test_policy_semantic_errors_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {".github/gitops-flags.yml": POLICY.replace("workflow: owners", "workflow: owner")})
    code, out, _ = run(capsys, "-C", str(tmp_path))
    assert code == 1
    assert out.splitlines()[0] == (".github/gitops-flags.yml:3:31: error: rules[0].workflow: no workflow "
                                   "'owner'; did you mean 'owners'? (workflows: owners)")


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {"flags/good.yaml": GOOD})
    assert run(capsys, "-C", str(tmp_path), "--format", "xml")[0] == 2
    assert run(capsys, "-C", str(tmp_path), str(tmp_path / "nope.yaml"))[0] == 2
    outside = tmp_path.parent / f"{tmp_path.name}-outside.yaml"
    outside.write_text(GOOD)
    code, _, err = run(capsys, "-C", str(tmp_path), str(outside))
    assert code == 2 and f"is outside the repository {tmp_path}" in err


def test_a_linked_folder_leading_outside_is_a_usage_error(tmp_path: Path, capsys: Capture) -> None:
    repo, elsewhere = tmp_path / "repo", tmp_path / "elsewhere"
    make_repo(repo, {"flags/good.yaml": GOOD})
    elsewhere.mkdir()
    (elsewhere / "bad.yaml").write_text(BAD)
    (repo / "flags" / "ext").symlink_to(elsewhere)
    code, _, err = run(capsys, "-C", str(repo), str(repo / "flags" / "ext"))
    assert code == 2 and "flags/ext is outside the repository" in err
    code, out, _ = run(capsys, "-C", str(repo))
    assert code == 1 and out.startswith("flags/ext: error: a symlink that leads outside the repository")


def test_json_format_is_valid_json_with_odd_characters(tmp_path: Path, capsys: Capture) -> None:
    odd = ('key: odd\ntype: string\nvariants: {"a\\"b\\n%,::": "\\u001b[31m", "é😀": 1}\n'
           'default_variant: "\\t"\n')
    make_repo(tmp_path, {"flags/odd.yaml": odd})
    code, out, _ = run(capsys, "-C", str(tmp_path), "--format", "json")
    problems = json.loads(out)
    assert code == 1
    assert [(p["line"], p["title"]) for p in problems] == [(3, "variant-type"), (4, "unknown-variant")]
    assert problems[0]["message"].startswith("variants.é😀: 1 is a number")
    assert "variants: a\"b\n%,::, é😀" in problems[1]["message"]
    code, out, _ = run(capsys, "-C", str(tmp_path))
    assert code == 1 and len(out.splitlines()) == 3  # two problems and the summary, one line each
    assert "(variants: a\"b\\n%,::, é😀)" in out


def test_finds_the_repository_root_from_a_subfolder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    make_repo(tmp_path, {"flags/team/good.yaml": GOOD, "flags/team/bad.yaml": BAD})
    monkeypatch.chdir(tmp_path / "flags" / "team")
    code, out, _ = run(capsys)
    assert code == 1 and out.startswith("flags/team/bad.yaml:3:1: error: unknown field 'colour'")
    # PATHS are relative to the current folder; only the named file is reported.
    code, out, _ = run(capsys, "good.yaml")
    assert (code, out) == (0, "ok: 1 flag file, 0 schema files and the policy checked, no problems\n")


def test_paths_select_files_and_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_repo(tmp_path, {"flags/a/good.yaml": GOOD, "flags/b/bad.yaml": BAD, "README.md": "hi\n"})
    root = str(tmp_path)
    assert run(capsys, "-C", root, f"{root}/flags/a")[0] == 0
    assert run(capsys, "-C", root, f"{root}/flags/b")[0] == 1
    code, out, _ = run(capsys, "-C", root, f"{root}/README.md", f"{root}/flags/a/good.yaml")
    assert code == 0 and out.startswith("README.md: warning: not a flag, schema or policy file; skipped\n")
    # The policy among the paths checks everything (an environment removed there can break any flag).
    assert run(capsys, "-C", root, f"{root}/.github/gitops-flags.yml")[0] == 1


def test_help_reads_well(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--help"]) == 0
    out = capsys.readouterr().out
    assert re.match(r"Usage: \S+ validate \[OPTIONS\] \[PATHS\]\.\.\.\n\n  Validate flag files, schema", out)
    for text in ("-C, --directory DIR", "--format [text|json|github]", "Exit status: 0 no errors"):
        assert text in out


def test_pre_commit_hook(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    hook = next(h for h in hooks if h["id"] == "gitops-flags-validate")
    assert hook["language"] == "python" and hook["pass_filenames"] is True
    assert hook["entry"] == "gitops-flags validate"
    files = re.compile(hook["files"])
    for path in ["flags/dark_mode.yaml", "flags/checkout/express_pay.yaml", "flags/schemas/rate_limits.yaml",
                 ".github/gitops-flags.yml"]:
        assert files.search(path), path
    for path in ["README.md", "gitops_flags/jsonschema/flag.json", ".github/workflows/ci.yml"]:
        assert not files.search(path), path
    # pre-commit runs the entry from the repository root with the matching paths appended.
    shutil.copytree(REPO / "flags", tmp_path / "flags")
    make_repo(tmp_path, {".github/gitops-flags.yml": (REPO / ".github/gitops-flags.yml").read_text()})
    staged = [str(tmp_path / p) for p in ["flags/dark_mode.yaml", "flags/schemas/rate_limits.yaml"]]
    assert run(capsys, "-C", str(tmp_path), *staged)[0] == 0
