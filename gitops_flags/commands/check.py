"""`gitops-flags check`: evaluate one pull request on GitHub and report on it.

Wiring only: the PR, its files and reviews from the API (`github`) → `check.evaluate_current` judges it
(reading files at commits from the checkout or the contents API, team members and history on demand) →
`check_report.report` decides the status, the sticky comment and the review requests → this module prints
the report, writes the job summary and step outputs, and posts it (`github.post_report`) unless --dry-run.

Exit codes: 0 approved or pending (the commit status carries the state), or nothing to do (an event action
that cannot change the outcome, a closed PR); 1 rejected, invalid or error, or pending with
--fail-on-pending; 2 when it cannot run or cannot report (bad event, token, permissions, rate limits).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from .. import actions_env, check, check_report, git, github, model, notify, render
from ..actions_env import ActionsEnv, GroupTarget, PullTarget, Skip
from ..check_report import CheckReport
from ..github import GitHubClient, GitHubError, TooManyFiles, WriteForbidden
from ..inert import echo, echo_command
from ..problems import GitopsFlagsError, Problem, Severity
from ..result import Evaluation
from ..snapshot import PullInfo
from . import apply as apply_cmd

ClientFactory = Callable[[str, str | None, str], GitHubClient]  # (api url, token, owner/name)


def default_client(api_url: str, token: str | None, repository: str) -> GitHubClient:
    return GitHubClient(github.connect(api_url, token), repository)


@dataclass(frozen=True)
class Options:
    repo: str | None = None
    pr: int | None = None
    dry_run: bool = False
    fail_on_pending: bool = False
    config: str = model.POLICY_PATH
    checkout: Path | None = None


@click.command(name="check")
@click.option("--repo", metavar="OWNER/NAME", help="Repository (default: GITHUB_REPOSITORY).")
@click.option("--pr", type=click.IntRange(min=1), help="Pull request number (default: the Actions event's).")
@click.option("--dry-run", is_flag=True, envvar="INPUT_DRY-RUN",
              help="Print the comment and the status instead of posting them.")
@click.option("--fail-on-pending", is_flag=True, envvar="INPUT_FAIL-ON-PENDING",
              help="Exit 1 while approvals are pending (for teams that require the job, not the status).")
@click.option("--config", default=model.POLICY_PATH, show_default=True,
              help="Policy file, read at the PR's base commit.")
@click.option("--checkout", type=click.Path(file_okay=False, path_type=Path),
              help="Local clone whose git objects are read when present (default: GITHUB_WORKSPACE or .).")
def command(repo: str | None, pr: int | None, dry_run: bool, fail_on_pending: bool, config: str,
            checkout: Path | None) -> int:
    """Evaluate a pull request on GitHub and report a status, a comment and review requests."""
    options = Options(repo, pr, dry_run, fail_on_pending, config, checkout)
    return run(options, ActionsEnv.from_environ(os.environ), client_factory)


client_factory: ClientFactory = default_client  # tests swap in a client without pauses and with their retries


def run(options: Options, env: ActionsEnv, make_client: ClientFactory) -> int:
    target = _target(options, env)
    if isinstance(target, Skip):
        echo(f"gitops-flags: nothing to do ({target.reason})")
        return 0
    if isinstance(target, GroupTarget):
        return run_group(options, env, make_client, target)
    repository, number = target
    client = make_client(env.api_url, env.token or None, repository)
    pull = client.pull(number)
    if pull.state == "closed":  # merged or abandoned: a status, comment or review request would be noise
        echo(f"gitops-flags: nothing to do (pull request #{number} is closed)")
        return 0
    reviews = client.reviews(number)
    source = github.PullSource(client, options.checkout or Path(env.workspace or "."))
    try:
        changed = github.changed_paths(client.files(pull))
        evaluation = check.evaluate_current(pull, changed, reviews, source, options.config)
    except TooManyFiles as exc:
        evaluation = Evaluation("error", message=str(exc))
    finally:
        source.close()
    links = render.Links(env.server_url, repository, pull.head_sha, env.run_url(repository))
    # A PR without comments has no sticky comment: skip the list (the first run then stays at 6 requests
    # with its review request).
    comments = client.comments(pull.number) if pull.comments != 0 else []
    sticky = check_report.find_sticky(comments, pull.author)
    result = check_report.report(evaluation, pull, reviews, client.owner, links, sticky,
                                 options.fail_on_pending)
    return show(client, pull, result, env, options)


def _target(options: Options, env: ActionsEnv) -> tuple[str, int] | GroupTarget | Skip:
    repository = options.repo or env.repository
    if options.pr is not None:
        if not repository:
            raise GitopsFlagsError("--pr needs --repo OWNER/NAME (or GITHUB_REPOSITORY)")
        return repository, options.pr
    if not env.event_name:
        raise GitopsFlagsError("outside GitHub Actions, run `gitops-flags check --repo OWNER/NAME --pr N`")
    payload = actions_env.read_event(env.event_path) if env.event_path else {}
    target = actions_env.target_from_event(env.event_name, payload)
    if isinstance(target, PullTarget | GroupTarget) and not repository:
        raise GitopsFlagsError("GITHUB_REPOSITORY is not set; pass --repo OWNER/NAME")
    if isinstance(target, PullTarget):
        return repository, target.number
    return target


# --- a merge queue's group ------------------------------------------------------------------------------


def run_group(options: Options, env: ActionsEnv, make_client: ClientFactory, group: GroupTarget) -> int:
    """`merge_group`: the group's head gets the same required status, judged as apply will judge the
    group once it lands: each PR of the group (named by its queue branch) must be approved, under its base
    policy and the policy it lands on, and its files as they stand in the group must be its approved head's.
    The group's commits must be in the checkout (actions/checkout with fetch-depth: 0)."""
    assert env.repository or options.repo
    repository = options.repo or env.repository or ""
    client = make_client(env.api_url, env.token or None, repository)
    checkout = (options.checkout or Path(env.workspace or ".")).resolve()
    chain = [sha for sha, _ in git.first_parent_chain(checkout, group.base_sha, group.head_sha)]
    ends = github.queue_entries(client.matching_refs(f"heads/gh-readonly-queue/{group.base_ref}/"),
                                group.base_ref)
    head = github.QUEUE_REF.fullmatch(group.head_ref)
    if head is not None:
        ends[group.head_sha] = int(head["number"])
    source = github.QueuePulls(client, checkout, chain, ends, options.config, base_ref=group.base_ref)
    try:
        judged = apply_cmd.judge_commits(checkout, group.base_sha, group.head_sha, source,
                                         datetime.now(UTC).replace(microsecond=0))
    finally:
        source.close()
    results = judged.results
    bad = [r for r in results if r.outcome in ("blocked", "warned")]
    prs = sorted({r.unit.pull.number for r in results if r.unit.pull is not None})
    if judged.failures:
        state, description = "error", f"the group could not be judged: {judged.failures[0]}"
    elif bad:
        first = bad[0]
        state = "failure"
        description = f"{len(bad)} change(s) would not be applied: {notify.target(first)}: {first.reason}"
    else:
        via = ", ".join(f"#{n}" for n in prs) or "no PR"
        state, description = "success", f"the group ({via}) would apply as approved"
    context = f"gitops-flags: {group.base_ref}"
    summary = "\n".join([f"## gitops-flags: merge group {group.head_sha[:12]}", "",
                          f"**{state}**: {render.escape_md(description, 800)}", "",
                          *(f"- {render.escape_md(notify.line(r), 600)}" for r in results)]) + "\n"
    actions_env.append_summary(env.summary_path, summary)
    short = description if len(description) <= 140 else description[:139] + "…"
    if options.dry_run:
        echo(f"--- commit status ({context}) on {group.head_sha[:12]}: {state}: {short}")
    else:
        client.create_status(group.head_sha, state, short, context, env.run_url(repository))
    return 0 if state == "success" else 1


def _log(text: str, env: ActionsEnv) -> None:
    """Print text that quotes the PR: no line of it is a workflow command (`inert`)."""
    echo(text, nl=False)


def _annotate(message: str, severity: Severity, title: str, env: ActionsEnv) -> None:
    if env.in_actions:
        echo_command(render.annotation(Problem("", None, None, message, severity, title)))


def show(client: GitHubClient, pull: PullInfo, result: CheckReport, env: ActionsEnv, options: Options) -> int:
    """Print the report, write the step outputs and the job summary, and post it (or, on a dry run, print
    what would be posted)."""
    _log(result.text(), env)
    if env.in_actions:
        for line in render.annotations(result.evaluation.problems):
            echo_command(line)
    summary = result.summary()
    actions_env.write_outputs(env.output_path, result.outputs())
    if result.deferred:
        echo(f"gitops-flags: draft pull request: reviews from {', '.join(result.deferred)} are "
             "requested once it is ready for review")
    if options.dry_run:
        echo(f"--- commit status ({result.context}) on {result.head_sha[:12]}: {result.state}: "
             f"{result.description}")
        echo(f"--- sticky comment: {result.comment_plan()}")
        _log(result.comment, env)
        echo(f"--- review requests: users {list(result.users) or '-'}, teams {list(result.teams) or '-'}")
        actions_env.append_summary(env.summary_path, summary)
        return result.exit_code
    try:
        warning = github.post_report(client, result)
        if warning:
            echo(f"warning: {warning}", err=True)
            _annotate(warning, "warning", "review-request", env)
    except GitHubError as exc:  # the report could not be posted: the job summary gets it all
        help_text = _write_help(exc, pull, env)
        notice = f"> [!WARNING]\n> {render.escape_md(help_text, 2000)}\n\n"
        actions_env.append_summary(env.summary_path, notice + summary)
        echo(f"error: {help_text}", err=True)
        _annotate(help_text, "error", "cannot-report", env)
        return 2
    actions_env.append_summary(env.summary_path, summary)
    return result.exit_code


def _write_help(exc: GitHubError, pull: PullInfo, env: ActionsEnv) -> str:
    text = str(exc)
    if isinstance(exc, WriteForbidden) and pull.from_fork and env.event_name in (
            "pull_request", "pull_request_review"):
        text += (
            f" This pull request comes from a fork ({pull.head_repo or 'deleted'}), and on "
            f"`{env.event_name}` GitHub gives such runs a read-only token, so the result cannot be posted. "
            "Run the check on `pull_request_target` instead (it reads the PR's files as data and never runs "
            "them; see docs/security.md), or give the action a GitHub App or PAT token."
        )
    return text + " The full report is in this job's summary."
