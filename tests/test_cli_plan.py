"""`gitops-flags plan` over real git repositories: inputs from git objects, policy from the base, --pull,
formats and exit codes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from gitops_flags.cli import main

Cap = pytest.CaptureFixture[str]

POLICY = """\
version: 1
environments: [staging, production]
roles:
  manager: ["@acme/managers"]
  qa: [quinn]
rules:
  - {match: {kind: governance}, workflow: gov}
  - {match: {kind: flag, environment: production}, workflow: prod}
  - {match: {kind: flag}, workflow: light}
workflows:
  prod:
    steps:
      - {id: manager, role: manager}
      - {id: qa, role: qa, after: [manager], when: {change_type: [create, update, rollout]}}
  light:
    steps: [{id: owner, role: codeowner}]
  gov:
    steps: [{id: qa, role: qa}]
"""


def flag(key: str, production: bool = False, description: str = "") -> str:
    return (
        f"key: {key}\n"
        f"description: {description or key}\n"
        "type: boolean\n"
        'variants: {"on": true, "off": false}\n'
        'default_variant: "off"\n'
        "environments:\n"
        "  staging: {enabled: true}\n"
        f"  production: {{enabled: {str(production).lower()}}}\n"
    )


class Repo:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], cwd=self.root, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def commit(self, files: dict[str, str | None], message: str = "change") -> str:
        for path, content in files.items():
            target = self.root / path
            if content is None:
                target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.git("rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = Repo(tmp_path / "repo")
    r.commit({
        ".github/gitops-flags.yml": POLICY,
        ".github/CODEOWNERS": "/flags/ @olga\n",
        "flags/a.yaml": flag("a"),
        "flags/b.yaml": flag("b"),
    }, "base")
    return r


def plan(repo: Repo, *args: str, capsys: Cap) -> tuple[int, str, str]:
    code = main(["plan", "--repo", str(repo.root), *args])
    out, err = capsys.readouterr()
    return code, out, err


def plan_json(repo: Repo, *args: str, capsys: Cap) -> tuple[int, dict[str, Any]]:
    code, out, _ = plan(repo, *args, "--format", "json", capsys=capsys)
    return code, json.loads(out)


def pull_file(tmp_path: Path, reviews: list[dict[str, Any]], **extra: Any) -> str:
    data = {"author": "alice", "labels": [], "reviews": reviews, "teams": {"acme/managers": ["max"]}, **extra}
    path = tmp_path / "pull.json"
    path.write_text(json.dumps(data))
    return str(path)


def review(login: str, commit: str, state: str = "APPROVED", review_id: int = 1) -> dict[str, Any]:
    return {"id": review_id, "user": {"login": login, "type": "User"}, "state": state, "commit_id": commit,
            "submitted_at": f"2026-01-01T10:00:{review_id:02d}Z"}


def steps(data: dict[str, Any], index: int = 0) -> dict[str, str]:
    return {s["id"]: s["state"] for s in data["changes"][index]["steps"]}


def test_without_pull_shows_what_each_change_needs(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    code, data = plan_json(repo, "--base", base, capsys=capsys)
    assert code == 1
    assert data["verdict"] == "pending"
    [change] = data["changes"]
    assert (change["key"], change["environment"], change["change_type"]) == ("a", "production", "toggle")
    assert change["workflow"] == "prod"
    assert steps(data) == {"manager": "pending", "qa": "skipped"}
    assert change["steps"][0]["eligible"] == ["@acme/managers"]


def test_json_contract_keys(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    _, data = plan_json(repo, "--base", base, capsys=capsys)
    assert set(data) >= {"verdict", "changes", "problems"}
    assert set(data["changes"][0]) >= {"kind", "key", "environment", "change_type", "summary", "workflow",
                                       "verdict", "steps"}
    assert set(data["changes"][0]["steps"][0]) >= {"id", "role", "state", "approved_by", "eligible", "reason"}


def test_pull_snapshot_approves(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    head = repo.commit({"flags/a.yaml": flag("a", production=True)})
    pull = pull_file(tmp_path, [review("Max", head)])
    code, out, _ = plan(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 0
    assert out.startswith("APPROVED")
    _, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert data["changes"][0]["steps"][0]["approved_by"] == ["Max"]


def test_authors_approval_does_not_count(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    head = repo.commit({"flags/a.yaml": flag("a", production=True)})
    pull = pull_file(tmp_path, [review("max", head)], author="max")
    code, _ = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 1


@pytest.mark.parametrize(("author", "reviewer"), [(" max", "max"), ("max", " Max "), ("@MAX", "max"),
                                                   ("max\t", "@max")])
def test_authors_approval_does_not_count_however_the_login_is_spelled(
    repo: Repo, tmp_path: Path, capsys: Cap, author: str, reviewer: str
) -> None:
    """Logins are normalised the same way everywhere: `" max"` is max, who cannot approve his own PR."""
    base = repo.git("rev-parse", "HEAD")
    head = repo.commit({"flags/a.yaml": flag("a", production=True)})
    pull = pull_file(tmp_path, [review(reviewer, head)], author=author)
    code, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 1 and data["changes"][0]["steps"][0]["state"] == "pending"


def test_stale_approval_on_changed_content(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    first = repo.commit({"flags/a.yaml": flag("a", production=True)})
    repo.commit({"flags/b.yaml": flag("b", production=True)})  # a.yaml untouched: the approval of a holds
    pull = pull_file(tmp_path, [review("max", first)])
    _, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    by_key = {c["key"]: c["steps"][0]["state"] for c in data["changes"]}
    assert by_key == {"a": "satisfied", "b": "pending"}
    repo.commit({"flags/a.yaml": flag("a", production=True, description="edited")})  # a.yaml moved on
    _, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert all(c["steps"][0]["state"] == "pending" for c in data["changes"] if c["key"] == "a")


def test_review_on_an_unknown_commit_is_stale(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    pull = pull_file(tmp_path, [review("max", "f" * 40)])
    code, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 1 and steps(data) == {"manager": "pending", "qa": "skipped"}


def test_unlisted_team_is_reported(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    head = repo.commit({"flags/a.yaml": flag("a", production=True)})
    pull = pull_file(tmp_path, [review("max", head)], teams={})
    code, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 1
    assert "not listed under `teams`" in data["changes"][0]["steps"][0]["reason"]


def test_policy_comes_from_the_base(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    loosened = POLICY.replace("{id: manager, role: manager}", "{id: manager, role: qa}")
    head = repo.commit({".github/gitops-flags.yml": loosened, "flags/a.yaml": flag("a", production=True)})
    pull = pull_file(tmp_path, [review("quinn", head)])
    code, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 1
    by_kind = {c["kind"]: c for c in data["changes"]}
    assert by_kind["flag"]["steps"][0]["state"] == "pending"  # the base still wants a manager
    assert by_kind["governance"]["workflow"] == "gov"


def test_with_head_reads_commits_not_the_working_tree(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    (repo.root / "flags/b.yaml").write_text("not: [valid")
    (repo.root / ".github/gitops-flags.yml").unlink()
    code, data = plan_json(repo, "--base", base, "--head", "HEAD", capsys=capsys)
    assert code == 1 and [c["key"] for c in data["changes"]] == ["a"] and data["problems"] == []


def test_without_head_uncommitted_edits_are_planned_and_said_so(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    (repo.root / "flags/b.yaml").write_text("not: [valid")  # untracked
    (repo.root / ".github/gitops-flags.yml").unlink()  # a tracked file deleted
    index_before = (repo.root / ".git" / "index").read_bytes()
    head_before = repo.git("rev-parse", "HEAD")
    code, data = plan_json(repo, "--base", base, capsys=capsys)
    assert code == 1
    assert sorted({c["key"] for c in data["changes"]}) == [".github/gitops-flags.yml", "a", "b"]
    assert [p["file"] for p in data["problems"]] == ["flags/b.yaml"]
    assert repo.git("rev-parse", "HEAD") == head_before and repo.git("status", "--porcelain") != ""
    assert (repo.root / ".git" / "index").read_bytes() == index_before  # nothing staged


def test_a_clean_working_tree_plans_head(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    assert main(["plan", "--repo", str(repo.root), "--base", base]) == 1
    assert "uncommitted" not in capsys.readouterr().err
    (repo.root / "flags/a.yaml").write_text(flag("a", production=False))
    main(["plan", "--repo", str(repo.root), "--base", base])
    assert ("note: planning HEAD plus 1 uncommitted file in the working tree (pass --head HEAD to plan "
            "commits only)") in capsys.readouterr().err


def test_no_flag_changes_is_approved(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"README.md": "hello\n"})
    code, data = plan_json(repo, "--base", base, capsys=capsys)
    assert (code, data["verdict"], data["message"]) == (0, "approved", "no flag changes")


def test_invalid_flag_exits_1(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    broken = flag("a", production=True).replace('default_variant: "off"', "default_variant: x")
    repo.commit({"flags/a.yaml": broken})
    code, data = plan_json(repo, "--base", base, capsys=capsys)
    assert (code, data["verdict"]) == (1, "invalid")
    assert any(p["file"] == "flags/a.yaml" and p["severity"] == "error" for p in data["problems"])


def test_unreadable_revision_exits_2(repo: Repo, capsys: Cap) -> None:
    code, _, err = plan(repo, "--base", "no-such-branch", capsys=capsys)
    assert code == 2 and "no-such-branch" in err


@pytest.mark.parametrize("policy", [None, "version: 1\nrules: [\n"])
def test_unusable_base_policy_exits_2(policy: str | None, repo: Repo, capsys: Cap) -> None:
    base = repo.commit({".github/gitops-flags.yml": policy})
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    code, out, err = plan(repo, "--base", base, capsys=capsys)
    assert code == 2 and out == ""
    assert "cannot evaluate" in err and ".github/gitops-flags.yml" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read it as JSON"),
        ('{"labels": []}', "`author`"),
        ('{"author": "a", "x": 1}', "unknown keys x"),
        ('{"author": "a", "teams": {"o/t": "bob"}}', "`teams`"),
        ('{"author": "a", "reviews": [{"user": "max", "state": "APPROVED"}]}', "reviews[0]: `user`"),
        ('{"author": "a", "reviews": [{"user": null, "state": "LGTM"}]}', "reviews[0]: `state`"),
        ('{"author": "a", "reviews": [{"user": null, "state": "approved", "id": "7"}]}', "`id`"),
        ('{"author": "a", "reviews": [{"user": null, "state": "approved", "commit_id": 7}]}', "`commit_id`"),
        ('{"author": "a", "reviews": [{"user": null, "state": "approved", "submitted_at": 5}]}',
         "`submitted_at`"),
        ('{"author": "a", "reviews": [{}, 3]}', "reviews[0]: `state`"),
    ],
)
def test_bad_pull_file_exits_2(content: str, message: str, repo: Repo, tmp_path: Path,
                               capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    path = tmp_path / "pull.json"
    path.write_text(content)
    code, _, err = plan(repo, "--base", base, "--pull", str(path), capsys=capsys)
    assert code == 2 and message in err


def test_markdown_and_text_formats(repo: Repo, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    repo.commit({"flags/a.yaml": flag("a", production=True)})
    code, text, _ = plan(repo, "--base", base, "--format", "text", capsys=capsys)
    assert code == 1 and text.startswith("PENDING") and "manager" in text
    code, markdown, _ = plan(repo, "--base", base, "--format", "markdown", capsys=capsys)
    assert code == 1 and "manager" in markdown and "|" in markdown


def test_json_contract_types(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    broken = flag("b", production=True).replace('default_variant: "off"', "default_variant: x")
    head = repo.commit({"flags/a.yaml": flag("a", production=True), "flags/b.yaml": broken})
    pull = pull_file(tmp_path, [review("max", head)])
    code, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 1 and data["verdict"] == "invalid"
    assert isinstance(data["changes"], list) and isinstance(data["problems"], list) and data["problems"]
    verdicts = {"approved", "pending", "rejected", "invalid", "error"}
    for change in data["changes"]:
        assert change["kind"] in {"flag", "schema", "governance"} and change["verdict"] in verdicts
        for key in ("key", "change_type", "summary"):
            assert isinstance(change[key], str)
        assert change["environment"] is None or isinstance(change["environment"], str)
        assert change["workflow"] is None or isinstance(change["workflow"], str)
        for step in change["steps"]:
            assert step["state"] in {"satisfied", "pending", "waiting", "rejected", "skipped"}
            assert isinstance(step["id"], str) and isinstance(step["role"], str)
            assert isinstance(step["reason"], str)
            assert all(isinstance(x, str) for x in (*step["approved_by"], *step["eligible"]))
    a = next(c for c in data["changes"] if c["key"] == "a")
    assert (a["verdict"], a["steps"][0]["approved_by"]) == ("approved", ["max"])
    for problem in data["problems"]:
        assert isinstance(problem["file"], str) and isinstance(problem["message"], str)
        assert problem["line"] is None or isinstance(problem["line"], int)
        assert problem["severity"] in {"error", "warning"}
    assert {p["file"] for p in data["problems"]} == {"flags/b.yaml"}  # relative to the repository root


@pytest.mark.parametrize("head_policy", [None, "version: 1\nrules: [\n", "version: 1\nenvironments: [x]\n"])
def test_deleting_or_breaking_the_policy_is_judged_by_the_base(
    head_policy: str | None, repo: Repo, tmp_path: Path, capsys: Cap
) -> None:
    base = repo.git("rev-parse", "HEAD")
    head = repo.commit({".github/gitops-flags.yml": head_policy, "flags/a.yaml": flag("a", production=True)})
    pull = pull_file(tmp_path, [review("max", head)])
    code, data = plan_json(repo, "--base", base, "--pull", pull, capsys=capsys)
    assert code == 1 and data["verdict"] == "pending"
    by_kind = {c["kind"]: c for c in data["changes"]}
    assert by_kind["flag"]["verdict"] == "approved"  # the base policy: a manager, QA skipped for a toggle
    assert (by_kind["governance"]["workflow"], by_kind["governance"]["verdict"]) == ("gov", "pending")
    assert by_kind["governance"]["summary"].startswith("policy")
    quinn = pull_file(tmp_path, [review("max", head), review("quinn", head, review_id=2)])
    assert plan_json(repo, "--base", base, "--pull", quinn, capsys=capsys)[0] == 0


def test_a_change_no_rule_matches_is_an_error(repo: Repo, capsys: Cap) -> None:
    without_governance = POLICY.replace("  - {match: {kind: governance}, workflow: gov}\n", "")
    base = repo.commit({".github/gitops-flags.yml": without_governance})
    repo.commit({".github/workflows/ci.yml": "name: ci\n"})
    code, data = plan_json(repo, "--base", base, capsys=capsys)
    assert (code, data["verdict"]) == (1, "error")
    [change] = data["changes"]
    assert change["verdict"] == "error" and change["steps"] == []
    assert "governance:.github/workflows/ci.yml" in change["reason"]


def test_logins_in_the_pull_file_may_carry_an_at_sign(repo: Repo, tmp_path: Path, capsys: Cap) -> None:
    base = repo.git("rev-parse", "HEAD")
    head = repo.commit({"flags/a.yaml": flag("a", production=True)})
    own = pull_file(tmp_path, [review("max", head)], author="@Max")
    assert plan_json(repo, "--base", base, "--pull", own, capsys=capsys)[0] == 1  # the author's own approval
    member = pull_file(tmp_path, [review("max", head)], teams={"Acme/Managers": ["@max"]})
    assert plan_json(repo, "--base", base, "--pull", member, capsys=capsys)[0] == 0

