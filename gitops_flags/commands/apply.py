"""`gitops-flags apply`: reconcile the flag store to the head of the default branch.

The shell around the `apply` use case: it parses the options, wires the adapters (git's
`Repository`, GitHub's `MergedPulls`, the store, the clock), plans the walk (`walk.plan_walk`), runs
`apply.run`, and renders its `ApplyResult` (terminal, job summary, step outputs). docs/apply.md
describes the whole.

Notifications go through the store's outbox (`delivery.flush`): each write carries the PR comments and
the webhook message it owes, and they are delivered, then removed, after the walk. A run that dies in
between leaves them for the next run, which sends them.

Exit codes: 0 everything applied (or nothing to do); 1 a change was blocked or a write failed; 2 the run
could not start (no policy, unreadable store, rewritten history, no GitHub access to verify approvals).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import click

from .. import actions_env, apply, delivery, git, notify, validate, walk
from ..actions_env import ActionsEnv
from ..apply import ApplyResult
from ..inert import echo, echo_command
from ..model import Policy, StoreConfig
from ..problems import GitopsFlagsError
from ..reconcile import MergedPullSource, UnitResult
from ..store import (
    Store,
    StoreError,
    StoreSnapshot,
    branch_location,
    featureflags,
    open_store,
    store_url,
)
from ..store.seal import key_from_env
from . import location
from .clock import parse_now
from .manifests import finish as finish_manifests
from .options import directory_option
from .store import TOKEN_ENV, Notice, checked_read
from .store import repair as repair_store

DEFAULT_BRANCH = StoreConfig().branch  # the store branch when the policy names no store

SourceFactory = Callable[[ActionsEnv, Path], MergedPullSource | None]
NotifierFactory = Callable[[ActionsEnv], notify.Notifier | None]
StoreOpener = Callable[[str, ActionsEnv], Store]


@dataclass(frozen=True)
class Options:
    repo: Path = Path(".")
    rev: str = "HEAD"
    store: str | None = None
    dry_run: bool = False
    verify: bool = True
    baseline: str | None = None
    now: datetime | None = None
    repair: bool = False
    init: bool = False  # a file: store whose directory does not exist may be created
    manifests: Path | None = None  # --manifests DIR: FeatureFlag manifests to a directory


@click.command(name="apply")
@click.option("--store", "store_arg", metavar="URL", envvar="GITOPS_FLAGS_STORE",
              help="file:PATH, github-branch:BRANCH or litestar-flags:URL (default: the policy's store).")
@directory_option("The flag repository (a git clone with full history).", default=".", exists=True)
@click.option("--rev", default="HEAD", show_default=True, help="The default branch's head to reconcile to.")
@click.option("--dry-run", is_flag=True, help="Print what would be applied; write and post nothing.")
@click.option("--no-verify-approvals", is_flag=True,
              help="Apply without re-checking PR approvals (local use; audited as unverified).")
@click.option("--baseline", metavar="REV",
              help="Empty store only: take the flags at REV as they are, then walk REV..head.")
@click.option("--now", "now_arg", metavar="ISO-8601",
              help="Simulated time: apply as if it were this time (demos, replays; default: the clock).")
@click.option("--init", is_flag=True,
              help="Start a new store: create a file: store's directory when it does not exist (without "
                   "--init or --baseline, a missing store is an error, so a typo cannot start one).")
@click.option("--repair", is_flag=True,
              help="When the store fails its seal, restore its last sealed version first (needs "
                   "GITOPS_FLAGS_STORE_KEY), then reconcile from there. Audited.")
@click.option("--manifests", "manifests", metavar="DIR", envvar="GITOPS_FLAGS_MANIFESTS",
              type=click.Path(file_okay=False, path_type=Path),
              help="Write the FeatureFlag manifests (store.manifests) to DIR instead of their target.")
def command(store_arg: str | None, repo: Path, rev: str, dry_run: bool, no_verify_approvals: bool,
            baseline: str | None, now_arg: str | None, init: bool, repair: bool,
            manifests: Path | None) -> int:
    """Reconcile the flag store to the default branch's head (approved changes only)."""
    options = Options(repo, rev, store_arg, dry_run, not no_verify_approvals, baseline, parse_now(now_arg),
                      repair, init, manifests)
    env = ActionsEnv.from_environ(os.environ)
    return run(options, env, source_factory=source_factory, notifier_factory=notifier_factory,
               store_opener=store_opener)


# --- adapters (swapped by tests) -------------------------------------------------------------------


def default_source(env: ActionsEnv, checkout: Path) -> MergedPullSource | None:
    """PRs from the GitHub API, when the run has a token and knows its repository."""
    if not (env.token and env.repository):
        return None
    from .. import github

    client = github.GitHubClient(github.connect(env.api_url, env.token), env.repository)
    return github.MergedPulls(client, checkout)


def default_notifier(env: ActionsEnv) -> notify.Notifier | None:
    if not (env.token and env.repository):
        return None
    from .. import github

    client = github.GitHubClient(github.connect(env.api_url, env.token), env.repository)
    return delivery.GitHubCommenter(client)


def default_store_opener(url: str, env: ActionsEnv) -> Store:
    """The store with the seal key from GITOPS_FLAGS_STORE_KEY. A github-branch store in another repository
    (`github-branch:OWNER/NAME:BRANCH`) is written with GITOPS_FLAGS_STORE_TOKEN (a GitHub App installation
    token or a fine-grained token with contents: write there); the store's own repository, with it when set,
    else with GITHUB_TOKEN."""
    key = key_from_env(os.environ)
    if url.startswith("github-branch:"):
        repository, _ = branch_location(url.removeprefix("github-branch:"))
        token = os.environ.get(TOKEN_ENV) or env.token
        if repository and not os.environ.get(TOKEN_ENV):
            echo(f"note: the store {url} is in another repository and {TOKEN_ENV} is not set: trying "
                       "GITHUB_TOKEN, which can write only its own repository (docs/store.md)", err=True)
        if not (token and (repository or env.repository)):
            raise StoreError(
                f"the store {url} lives on GitHub: set GITHUB_TOKEN and GITHUB_REPOSITORY (in Actions they "
                "are set), or pass --store file:PATH to work locally"
            )
        from .. import github

        repo = github.connect(env.api_url, token).get_repo(repository or env.repository)
        return open_store(url, repo=repo, key=key)
    return open_store(url, key=key)


source_factory: SourceFactory = default_source
notifier_factory: NotifierFactory = default_notifier
store_opener: StoreOpener = default_store_opener


def default_store_url(policy: Policy | None, repo: Path, *, in_actions: bool = False) -> str:
    """The policy's store; a file store's path is relative to the repository. A policy without a
    `store:` section gets `github-branch:flag-store` inside GitHub Actions (a directory in the checkout
    would be lost with the runner) and `file:<repo>/.flag-store` elsewhere, as does no policy."""
    if policy is None or "store" not in policy.model_fields_set:
        if in_actions:
            return f"github-branch:{DEFAULT_BRANCH}"
        return f"file:{repo / '.flag-store'}"
    if policy.store.type == "file":
        return f"file:{repo / policy.store.path}"
    return store_url(policy.store)


# --- the run ---------------------------------------------------------------------------------------


def run(options: Options, env: ActionsEnv, *, source_factory: SourceFactory,
        notifier_factory: NotifierFactory, store_opener: StoreOpener) -> int:
    repo = options.repo.resolve()
    history = git.Repository(repo)
    head = history.resolve(options.rev)
    with history.tree(head) as head_tree:
        head_policy, _ = validate.read_policy(head_tree)
    url = options.store or default_store_url(head_policy, repo, in_actions=env.in_actions)
    missing = location.missing_file_store(url)
    if missing is not None and (missing.exists() or not (options.init or options.baseline)):
        location.require_existing(url)
    if missing is not None and not options.dry_run:
        missing.mkdir(parents=True)
        echo(f"started a new flag store at {url}")
    now = options.now or datetime.now(UTC).replace(microsecond=0)
    store = featureflags.wrap(store_opener(url, env), head_policy, env=env, repo_dir=repo, environ=os.environ,
                              now=now, directory=options.manifests)
    _warn_ephemeral(url, env)
    notice = Notice.of("apply", env, os.environ, head_policy, writes=not options.dry_run)
    if not options.dry_run:
        notice = replace(notice, pull_comment=_refusal_commenter(env, repo, head, source_factory,
                                                                 notifier_factory))
    if options.repair:
        if options.dry_run:
            raise GitopsFlagsError("--repair writes the store; it cannot be combined with --dry-run")
        repair_store(store, notice, now)
    snapshot = checked_read(store, notice)  # a store that fails its seal stops the run here (exit 1)
    planned = walk.plan_walk(history, snapshot.state.applied_commit, head, options.baseline)

    source: MergedPullSource | None = None
    if options.verify and any(not s.baseline for s in planned.steps):
        source = source_factory(env, repo)
        if source is None:
            raise GitopsFlagsError(
                "re-checking approvals needs GitHub: set GITHUB_TOKEN and GITHUB_REPOSITORY (Actions sets "
                "them), or pass --no-verify-approvals for local use"
            )

    _header(options, store.where, snapshot, head, len(planned.steps))
    channels = _channels(options, env, head_policy, notifier_factory)
    try:
        result = apply.run(history, store, snapshot, planned.steps, head=head, now=now, verify=options.verify,
                           dry_run=options.dry_run, source=source, head_policy=head_policy,
                           outbound=channels.outbound, notes=planned.notes)
    finally:
        close = getattr(source, "close", None)  # the GitHub source holds git processes
        if close is not None:
            close()

    code = _report(options, env, store, result, channels, now)
    return max(code, finish_manifests(store, dry_run=options.dry_run, notice=notice))


@dataclass(frozen=True)
class _Channels:
    """Where this run's notifications can go. The webhook URL is a secret: never printed or stored."""

    notifier: notify.Notifier | None
    webhook_variable: str | None
    webhook_url: str | None
    outbound: notify.Outbound


def _channels(options: Options, env: ActionsEnv, head_policy: Policy | None,
              notifier_factory: NotifierFactory) -> _Channels:
    variable = head_policy.options.webhook_env if head_policy else None
    url = (os.environ.get(variable) or None) if variable else None
    notifier = None if options.dry_run else notifier_factory(env)
    outbound = notify.Outbound(notify.run_key(os.environ), comments=notifier is not None,
                               webhook=url is not None and not options.dry_run,
                               repository=env.repository, run_url=env.run_url())
    return _Channels(notifier, variable, url, outbound)


def _refusal_commenter(env: ActionsEnv, repo: Path, head: str, source_factory: SourceFactory,
                       notifier_factory: NotifierFactory) -> Callable[[str], str | None]:
    """When the store is refused, the PR that merged the head (the push this run is for) is told: its merge
    was not applied. Looked up only then. None (nobody told) without a token, or for a direct push."""

    def post(body: str) -> str | None:
        source = source_factory(env, repo)
        notifier = notifier_factory(env) if source is not None else None
        if source is None or notifier is None:
            return None
        try:
            pull = source.pull_for_commit(head)
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()
        if pull is None:
            return None
        notifier.comment(pull.number, body)
        return f"PR #{pull.number}"

    return post


# --- judging without a store: the merge queue's check ----------------------------------------------


def judge_commits(repo: Path, base: str, head: str, source: MergedPullSource, now: datetime) -> ApplyResult:
    """What apply would decide for the first-parent commits base..head, written nowhere (`check` runs it
    on a merge queue's group); prints each result as apply does."""
    history = git.Repository(repo)
    with history.tree(head) as tree:
        head_policy, _ = validate.read_policy(tree)
    result = apply.judge_commits(history, base, head, source, now, head_policy)
    _echo_results(result.results)
    for error in result.errors:
        echo(f"error: {error}", err=True)
    return result


# --- reporting -------------------------------------------------------------------------------------


def _header(options: Options, where: str, snapshot: StoreSnapshot, head: str, steps: int) -> None:
    start = snapshot.state.applied_commit
    frm = start[:12] if start else "an empty store"
    prefix = "dry run: " if options.dry_run else ""
    plural = "s" if steps != 1 else ""
    echo(f"{prefix}store {where}: from {frm} to {head[:12]} ({steps} commit{plural})")
    if not options.verify:
        echo("WARNING: approvals are NOT verified (--no-verify-approvals): changes are applied and "
                   "audited as unverified", err=True)


def _warn_ephemeral(url: str, env: ActionsEnv) -> None:
    """A file store inside the checkout is thrown away with the runner: the next run would start over."""
    if not (env.in_actions and env.workspace and url.startswith("file:")):
        return
    path = Path(url.removeprefix("file:")).resolve()
    workspace = Path(env.workspace).resolve()
    if path == workspace or workspace in path.parents:
        echo_command(f"::warning title=gitops-flags apply::the flag store {path} is inside the checkout and "
                     "is lost when the job ends; use a github-branch store in Actions (docs/apply.md)")


def _echo_results(results: Sequence[UnitResult]) -> None:
    for result in results:
        echo(notify.line(result), err=result.outcome != "applied")


def _report(options: Options, env: ActionsEnv, store: Store, result: ApplyResult, channels: _Channels,
            now: datetime) -> int:
    """Totals first, then at most `notify.TERMINAL_LINES` lines of detail (the audit log and the job
    summary hold the rest), then what went wrong; the job summary and the step outputs."""
    results, where = result.results, store.where
    echo(notify.totals(result.counts, where=where, dry_run=options.dry_run))
    shown, left_out = notify.first(results, notify.TERMINAL_LINES)
    _echo_results(shown)
    if left_out:
        echo(notify.more_line(left_out, summary=False))
    for error in result.errors:
        echo(f"error: {error}", err=True)
    for note in result.notes:
        echo(f"note: {note}")
    if env.in_actions:  # the runner shows ten annotations of each kind per step
        commands = [line for r in shown if (line := notify.workflow_command(r))]
        for command_line in commands:
            echo_command(command_line)
    if result.failures:
        echo("stopped at a failure (above); the next run resumes there", err=True)
    undelivered: list[str] = []
    version = result.version
    if options.dry_run:
        pending = notify.pending_note(result.latest.outbox)
        if pending:
            echo(f"note: {pending}")
    else:
        undelivered, flushed_version = _deliver(store, result, channels, now)
        version = flushed_version or version
    summary = notify.job_summary(results, store=where, head=result.head, verified=options.verify,
                                 dry_run=options.dry_run, failures=result.failures, notes=result.notes,
                                 undelivered=undelivered, version=version)
    actions_env.append_summary(env.summary_path, summary)
    actions_env.write_outputs(env.output_path, result.outputs(version))
    return result.exit_code


def _deliver(store: Store, result: ApplyResult, channels: _Channels, now: datetime
             ) -> tuple[list[str], str | None]:
    """Send what the outbox holds (this run's entries, and any an earlier run left), then clear it; the
    problems, and the store's version if clearing wrote it. Failures are warnings: the store was written,
    and the entries wait for the next run."""
    if result.results or result.failures:
        if channels.notifier is None and any(r.unit.pull is not None for r in result.results):
            echo("note: no GitHub token and repository: the merged PRs get no comment")
        if channels.webhook_variable and not channels.webhook_url:
            echo(f"note: the webhook variable {channels.webhook_variable} (from the policy) is not "
                 "set: no webhook sent")
    own = {e.id: e for e in result.notifications}
    stored = result.latest.outbox
    stored_ids = {e.id for e in stored}
    pending = [own.get(e.id, e) for e in stored]
    # Not recorded (the store could not be written): sent all the same, once, as before the outbox.
    pending += [e for e in own.values() if e.id not in stored_ids and e.id not in result.recorded]
    if not pending:
        return [], None
    flushed = delivery.flush(store, pending, notifier=channels.notifier, webhook_url=channels.webhook_url,
                             now=now, own=own.keys(), recorded=stored_ids)
    waiting = sum(1 for d in flushed.deliveries if d.status == "skipped")
    if waiting:
        echo(f"note: {waiting} earlier notification(s) wait in the store's outbox for a run with "
             "a GitHub token or the webhook variable")
    for problem in flushed.problems:
        echo(f"warning: {problem}", err=True)
    return list(flushed.problems), flushed.version
