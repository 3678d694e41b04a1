"""Attack: repository text that carries workflow commands, staged as a repository and run as real
processes against the GitHub double (issue 12, part 4).

A folder name, a description, a PR title, a moved file ("moved from … to …") and a gate's `json_field`
all carry `::stop-commands::`, `::add-mask::`, forged annotations and `##[…]` commands. `check`, `apply`
(which reports the unapproved changes as blocked: the annotations an attacker wants silenced), `advance`,
`status`, `audit` and `validate` run as Actions runs them. No line of what any of them prints may be a
command the tool did not mean to give (tests/runner_commands.py mirrors the runner's parser), and the
hostile text must still be shown.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from runner_commands import foreign

from . import conftest
from .conftest import T_ADVANCE, T_APPLY, Actions, Job, Lifecycle, replace_once, seed_files
from .github_double import GitHubDouble

MARK = "PWNED"
FOLDER = f"flags/::stop-commands::{MARK} ##[add-mask]{MARK}"
DESCRIPTION = f"Fine.\n::error title={MARK}::forged\n##[warning]{MARK}\n  ::add-mask::{MARK}"
TITLE = f"::stop-commands::{MARK}"
FIELD = f"data.##[error]{MARK}"


def hostile_flag(key: str, default: str = "off") -> str:
    return (f"key: {key}\ntype: boolean\nvariants: {{\"on\": true, \"off\": false}}\n"
            f"default_variant: {default!r}\ndescription: {DESCRIPTION!r}\nname: \"::notice::{MARK}\"\n"
            "environments:\n  staging: {enabled: true}\n")


def printed(job: Job) -> str:
    return job.stdout + "\n" + job.stderr


def hostile_seed() -> dict[str, str]:
    """The adopted repository already holds hostile text: a folder, a description, a gate's json_field."""
    files = seed_files()
    flow = "flags/checkout/new_checkout_flow.yaml"
    files[flow] = replace_once(files[flow], "json_field: data.error_rate", f"json_field: {FIELD!r}")
    files[f"{FOLDER}/hostile_one.yaml"] = hostile_flag("hostile_one")
    return files


def test_no_printer_hands_the_runner_a_command(double: GitHubDouble, actions: Actions, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    lc = Lifecycle(double, actions, f"file:{tmp_path / 'flag-store'}")
    monkeypatch.setattr(conftest, "seed_files", hostile_seed)
    lc.setup()
    jobs: dict[str, Job] = {}
    jobs["apply (adoption)"] = lc.apply(T_APPLY)

    # A PR nobody approves: moves a flag into the hostile folder and edits a description.
    dark = double.read(double.branch_sha("main"), "flags/dark_mode.yaml")
    assert dark is not None
    moved = dark.decode().replace("description:", f"description: {DESCRIPTION!r}\nx_old_description:", 1)
    moved = "\n".join(line for line in moved.splitlines() if not line.startswith("x_old_description:")) + "\n"
    double.open_pull("alice", "alice/hostile", {
        "flags/dark_mode.yaml": None, f"{FOLDER}/dark_mode.yaml": moved,
        # and one that is invalid, so that validate and check print a problem naming the folder
        f"{FOLDER}/hostile_two.yaml": hostile_flag("hostile_two", f"::error::{MARK}"),
    }, TITLE, body=DESCRIPTION)
    jobs["check"] = lc.check(1, "pull_request.opened")
    double.merge(1, "mira")
    jobs["apply (unapproved merge)"] = lc.apply(T_ADVANCE[0])
    jobs["advance"] = lc.advance(T_ADVANCE[1])
    for name, args in (("status", ["status", "--store", lc.store]), ("audit", ["audit", "--store", lc.store]),
                       ("validate", ["validate"])):
        jobs[name] = actions.run(args, event="schedule", payload=double.event("schedule"), ref="origin/main",
                                 run_id=next(lc.run_ids))

    for name, job in jobs.items():
        assert foreign(printed(job), MARK) == [], f"{name}:\n{job}"
    # Not vacuous: the hostile text was printed, and apply did report the unapproved changes.
    for name in ("check", "apply (unapproved merge)", "advance", "status", "validate"):
        assert MARK in printed(jobs[name]), f"{name} never printed the hostile text:\n{jobs[name]}"
    assert "moved from" in printed(jobs["apply (unapproved merge)"]), jobs["apply (unapproved merge)"]
    blocked = [line for line in jobs["apply (unapproved merge)"].stdout.splitlines()
               if line.startswith("::error title=gitops-flags")]
    assert blocked, jobs["apply (unapproved merge)"]
