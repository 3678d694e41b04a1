"""`gitops-flags init`: the starter files are valid and carry the seeds' workflows; nothing is overwritten."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from gitops_flags.approvals import evaluate
from gitops_flags.changes import Change
from gitops_flags.cli import cli
from gitops_flags.codeowners import find_codeowners
from gitops_flags.model import Policy
from gitops_flags.snapshot import PullSnapshot, Review, TeamLookup
from gitops_flags.tree import DirTree
from gitops_flags.validate import read_policy, validate_tree

WRITTEN = [
    ".github/gitops-flags.yml",
    ".github/CODEOWNERS",
    "flags/example_flag.yaml",
    ".github/workflows/gitops-flags.yml",
    ".github/workflows/gitops-flags-apply.yml",
    ".github/workflows/gitops-flags-rollout.yml",
    "flags/schemas/.gitkeep",
    ".schemas/flag.json",
    ".schemas/schema.json",
    ".schemas/policy.json",
]


def init(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["init", *args], standalone_mode=False)
    if result.exception:
        raise result.exception
    return result.return_value, result.stdout, result.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    code, out, _ = init(str(tmp_path / "repo"))
    assert code == 0
    assert all(f"wrote {f}" in out for f in WRITTEN)
    return tmp_path / "repo"


def test_writes_every_file(repo: Path) -> None:
    written = sorted(p.relative_to(repo).as_posix() for p in repo.rglob("*") if p.is_file())
    assert written == sorted([*WRITTEN, ".gitignore"])


def test_the_local_store_is_ignored_once_and_an_existing_gitignore_kept(tmp_path: Path) -> None:
    (tmp_path / ".gitignore").write_text("*.pyc")
    code, out, _ = init(str(tmp_path))
    assert code == 0 and "added .flag-store/ to .gitignore" in out
    assert (tmp_path / ".gitignore").read_text().splitlines()[0] == "*.pyc"
    assert ".flag-store/" in (tmp_path / ".gitignore").read_text().splitlines()
    code, out, _ = init(str(tmp_path), "--force")
    assert code == 0 and "gitignore" not in out
    assert (tmp_path / ".gitignore").read_text().count(".flag-store/") == 1
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    check = ["git", "check-ignore", "-q", ".flag-store/state.json"]
    assert subprocess.run(check, cwd=tmp_path, check=False).returncode == 0


def test_example_files_name_their_schema_for_editors(repo: Path) -> None:
    for path, kind in (("flags/example_flag.yaml", "flag"), (".github/gitops-flags.yml", "policy")):
        first = (repo / path).read_text().splitlines()[0]
        assert first == f"# yaml-language-server: $schema=../.schemas/{kind}.json"
        schema = json.loads((repo / path).parent.joinpath(f"../.schemas/{kind}.json").read_text())
        jsonschema.validate(yaml.safe_load((repo / path).read_text().replace("\non:", '\n"on":')), schema)


def test_starter_files_validate(repo: Path) -> None:
    tree = DirTree(repo)
    policy, problems = read_policy(tree)
    assert policy is not None and problems == []
    validation = validate_tree(tree, policy)
    assert validation.problems == ()
    assert set(validation.flags) == {"example_flag"}
    owners = find_codeowners(tree)
    assert owners.problems == ()
    assert owners.owners_for("flags/example_flag.yaml") == ["@your-org/flag-owners"]
    assert owners.owners_for(".github/gitops-flags.yml") == ["@your-org/platform-admins"]


def test_workflow_runs_the_check_on_every_pull_request(repo: Path) -> None:
    workflow = yaml.safe_load((repo / ".github/workflows/gitops-flags.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "paths" not in triggers["pull_request"]  # a required check must report on every PR
    assert set(triggers["pull_request_review"]["types"]) >= {"submitted", "dismissed"}
    steps = workflow["jobs"]["check"]["steps"]
    assert any(s.get("with", {}).get("command") == "check" for s in steps)
    assert workflow["permissions"] == {}  # write permissions belong to the job
    job = workflow["jobs"]["check"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write", "statuses": "write"}


def test_refuses_to_overwrite_and_lists_the_files(repo: Path) -> None:
    (repo / ".github/gitops-flags.yml").write_text("mine\n")
    code, _, err = init(str(repo))
    assert code == 2
    assert all(f in err for f in WRITTEN if f != ".github/CODEOWNERS")  # an existing CODEOWNERS is kept
    assert (repo / ".github/gitops-flags.yml").read_text() == "mine\n"


def test_force_overwrites(repo: Path) -> None:
    (repo / ".github/CODEOWNERS").write_text("* @me\n")
    code, _, _ = init(str(repo), "--force")
    assert code == 0
    assert "@your-org/flag-owners" in (repo / ".github/CODEOWNERS").read_text()


@pytest.mark.parametrize("where", ["CODEOWNERS", "docs/CODEOWNERS", ".github/CODEOWNERS"])
def test_an_existing_codeowners_is_kept_not_shadowed(where: str, tmp_path: Path) -> None:
    (tmp_path / where).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / where).write_text("* @me\n")
    code, out, _ = init(str(tmp_path))
    assert code == 0 and f"kept {where}" in out and "/flags/" in out
    assert (tmp_path / where).read_text() == "* @me\n"
    # GitHub reads the first of .github/, the root, docs/: a new .github/CODEOWNERS would replace theirs
    assert find_codeowners(DirTree(tmp_path)).file == where
    assert (tmp_path / ".github/gitops-flags.yml").is_file()


def test_force_overwrites_the_codeowners_github_reads(tmp_path: Path) -> None:
    (tmp_path / "CODEOWNERS").write_text("* @me\n")
    assert init(str(tmp_path), "--force")[0] == 0
    assert "@your-org/flag-owners" in (tmp_path / "CODEOWNERS").read_text()
    assert not (tmp_path / ".github/CODEOWNERS").exists()


def test_init_into_an_existing_repository_then_validate(tmp_path: Path) -> None:
    (tmp_path / ".github/workflows").mkdir(parents=True)
    (tmp_path / ".github/workflows/ci.yml").write_text("name: ci\n")
    (tmp_path / "README.md").write_text("hello\n")
    assert init(str(tmp_path))[0] == 0
    assert (tmp_path / ".github/workflows/ci.yml").read_text() == "name: ci\n"
    result = CliRunner().invoke(cli, ["validate", "--repo", str(tmp_path)], standalone_mode=False)
    assert result.exception is None and result.return_value == 0, result.output
    assert "no problems" in result.stdout


def test_only_existing_files_block(tmp_path: Path) -> None:
    (tmp_path / "flags").mkdir()
    (tmp_path / "flags/other.yaml").write_text("x")
    assert init(str(tmp_path))[0] == 0


# --- the starter policy carries the seeds' workflows ----------------------------------------------------

TEAMS = {
    "your-org/eng-managers": ["max"],
    "your-org/qa": ["quentin"],
    "your-org/schema-reviewers": ["rita", "rob"],
    "your-org/staff-engineers": ["sam"],
    "your-org/compliance": ["carl"],
    "your-org/flag-owners": ["olga"],
    "your-org/platform-admins": ["pat"],
}


def _states(
    repo: Path, change: Change, *approvers: str, labels: frozenset[str] = frozenset()
) -> dict[str, str]:
    tree = DirTree(repo)
    policy: Policy | None = read_policy(tree)[0]
    assert policy is not None
    pull = PullSnapshot(
        author="alice",
        head_sha="h" * 40,
        labels=labels,
        reviews=tuple(Review(i, who, "APPROVED", "h" * 40) for i, who in enumerate(approvers, 1)),
        teams={slug: TeamLookup(frozenset(members)) for slug, members in TEAMS.items()},
    )
    result = evaluate([change], policy, find_codeowners(tree), pull).changes[0]
    return {s.id: s.state for s in result.steps} | {"verdict": result.verdict}


def _flag(change_type: str, environment: str = "production", enabled: bool | None = None) -> Change:
    path = "flags/example_flag.yaml"
    before, after = ({"enabled": not enabled}, {"enabled": enabled}) if enabled is not None else (None, None)
    return Change("flag", "example_flag", path, change_type, "...", environment, before, after,  # type: ignore[arg-type]
                  files=(path,))


def _schema(breaking: bool) -> Change:
    return Change("schema", "cfg", "flags/schemas/cfg.yaml", "schema_update", "...", breaking=breaking)


def test_flag_approval_is_manager_then_qa(repo: Path) -> None:
    expected = {"manager": "pending", "qa": "waiting", "verdict": "pending"}
    assert _states(repo, _flag("rollout"), "quentin") == expected
    assert _states(repo, _flag("rollout"), "max", "quentin")["verdict"] == "approved"


def test_qa_is_skipped_for_a_kill_switch_but_turning_on_needs_it(repo: Path) -> None:
    expected = {"manager": "satisfied", "qa": "skipped", "verdict": "approved"}
    assert _states(repo, _flag("toggle", enabled=False), "max") == expected
    turning_on = _states(repo, _flag("toggle", enabled=True), "max")
    assert turning_on == {"manager": "satisfied", "qa": "pending", "verdict": "pending"}
    assert _states(repo, _flag("toggle", enabled=True), "max", "quentin")["verdict"] == "approved"
    assert _states(repo, _flag("delete"), "max")["qa"] == "skipped"


def test_other_environments_need_a_code_owner(repo: Path) -> None:
    assert _states(repo, _flag("rollout", "staging"), "olga") == {"owner": "satisfied", "verdict": "approved"}


def test_schema_approval_two_reviewers_then_senior(repo: Path) -> None:
    assert _states(repo, _schema(False), "rita", "sam") == {
        "review": "pending", "senior": "waiting", "compliance": "skipped", "verdict": "pending"}
    assert _states(repo, _schema(False), "rita", "rob", "sam")["verdict"] == "approved"


LABELLED = frozenset({"requires-additional-review"})


@pytest.mark.parametrize(("breaking", "labels"), [(True, frozenset()), (False, LABELLED)])
def test_schema_approval_needs_compliance_when_breaking_or_labelled(
    breaking: bool, labels: frozenset[str], repo: Path
) -> None:
    reviewers = ("rita", "rob", "sam")
    assert _states(repo, _schema(breaking), *reviewers, labels=labels)["compliance"] == "pending"
    assert _states(repo, _schema(breaking), *reviewers, "carl", labels=labels)["verdict"] == "approved"


def test_governance_needs_senior_and_compliance(repo: Path) -> None:
    change = Change("governance", ".github/CODEOWNERS", ".github/CODEOWNERS", "governance", "edited")
    expected = {"senior": "satisfied", "compliance": "pending", "verdict": "pending"}
    assert _states(repo, change, "sam") == expected
    assert _states(repo, change, "sam", "carl")["verdict"] == "approved"


def test_apply_and_rollout_workflows_cannot_displace_each_other(repo: Path) -> None:
    apply = yaml.safe_load((repo / ".github/workflows/gitops-flags-apply.yml").read_text())
    rollout = yaml.safe_load((repo / ".github/workflows/gitops-flags-rollout.yml").read_text())
    assert apply["jobs"]["apply"]["steps"][-1]["with"]["command"] == "apply"
    assert rollout["jobs"]["advance"]["steps"][-1]["with"]["command"] == "advance"
    # GitHub cancels an older pending run when a newer one queues in the same group: separate groups, so a
    # scheduled advance never displaces a pending apply (the store's compare-and-swap orders their writes).
    assert apply["concurrency"]["group"] != rollout["concurrency"]["group"]
    assert apply["concurrency"]["cancel-in-progress"] is rollout["concurrency"]["cancel-in-progress"] is False
    assert "github.ref" in apply["concurrency"]["group"]
    for job in (apply["jobs"]["apply"], rollout["jobs"]["advance"]):
        assert job["environment"] == "flag-store"
        assert job["steps"][-1]["env"]["GITOPS_FLAGS_STORE_KEY"] == "${{ secrets.GITOPS_FLAGS_STORE_KEY }}"
    assert apply["jobs"]["apply"]["steps"][0]["with"]["fetch-depth"] == 0  # apply walks the history
    assert "schedule" in rollout[True] and "push" in apply[True]
    # A store that outlives the runner: the starter policy keeps it on a branch.
    policy = read_policy(DirTree(repo))[0]
    assert policy is not None and policy.store.type == "github-branch"



@pytest.mark.parametrize("name", [f for f in WRITTEN if f.startswith(".github/workflows/")])
def test_workflows_are_valid_github_workflows(name: str, repo: Path) -> None:
    schemas = Path(__file__).parent / "fixtures/github-api/schemas"
    schema = json.loads((schemas / "github-workflow.json").read_text())
    workflow = yaml.safe_load((repo / name).read_text())
    workflow["on"] = workflow.pop(True)  # YAML 1.1 reads the key `on` as true
    assert [e.message for e in jsonschema.Draft7Validator(schema).iter_errors(workflow)] == []
