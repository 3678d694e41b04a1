"""`gitops-flags advance`: move each due staged rollout one stage on, when its health gate allows.

The shell around the `advance` use case: it reads the policy and flag files at the repository's HEAD (the
default branch in the scheduled workflow), wires the store (read through the seal guard), the health gates
and the clock into `advance.run`, then reports each event: stdout, the job summary, a comment on the PR
that started the rollout, and the policy's webhook. The comments and the webhook message travel in the
store's outbox, written with the events (see `delivery.flush`), so a run that dies after its write leaves
them for the next `advance` or `apply` to send. What is decided, and why, is in `advance.py`.

Exit codes: 0 normally, 1 when a gate failed or was inconclusive, 2 for configuration errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click
import requests

from .. import advance, delivery, egress, git, health, notify
from ..actions_env import ActionsEnv, append_summary, write_outputs
from ..advance import Decision, FlagFiles, read_policy
from ..advance_report import (
    next_due_text,
    notifications,
    outcome_text,
    span_text,
    summary_markdown,
    when_text,
)
from ..inert import echo
from ..model import Policy, RolloutPlan
from ..store import Store, StoreSnapshot, featureflags
from ..store.state import GateResult, OutboxEntry
from .apply import default_store_opener, default_store_url
from .clock import parse_now
from .location import require_existing
from .manifests import finish as finish_manifests
from .options import directory_option
from .store import Notice, checked_read

# `status` reads the HEAD, the store and the rollout texts as advance does
__all__ = ["FlagFiles", "Options", "Services", "command", "read_policy", "repo_dir", "resolve_store_url",
           "run", "span_text", "when_text"]


# --- the shell's I/O, swapped in tests ---------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    store: str | None = None
    repo: Path | None = None
    now: datetime | None = None
    dry_run: bool = False
    manifests: Path | None = None  # --manifests DIR: FeatureFlag manifests to a directory


@dataclass
class Services:
    environ: Mapping[str, str]
    session: requests.Session = field(default_factory=requests.Session)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    open_store: Callable[[str, ActionsEnv], Store] = default_store_opener  # shared with apply
    commenter: Callable[[ActionsEnv], notify.Notifier | None] | None = None  # None: `default_commenter`


def default_commenter(env: ActionsEnv) -> notify.Notifier | None:
    """Comments go out only inside Actions, with a token and a repository."""
    if env.in_actions and env.token and env.repository:
        from .. import github

        return delivery.GitHubCommenter(github.GitHubClient(github.connect(env.api_url, env.token),
                                                          env.repository))
    return None


# --- locating the repository, the policy and the store (shared with `status`) -------------------------


def repo_dir(option: Path | None, env: ActionsEnv) -> Path:
    return option or Path(env.workspace or ".")


def resolve_store_url(option: str | None, policy: Policy | None, repo: Path, *, in_actions: bool = False
                      ) -> str:
    """`--store` as given; else the policy's store (a file store's path is taken from the repository
    root); else `github-branch:flag-store` in Actions and `file:.flag-store` in the repository elsewhere.
    The same default as apply's."""
    return option or default_store_url(policy, repo, in_actions=in_actions)


# --- the command ---------------------------------------------------------------------------------------


@click.command(name="advance")
@click.option("--store", "store_url_", metavar="URL", envvar="GITOPS_FLAGS_STORE",
              help="file:PATH, github-branch:BRANCH or litestar-flags:URL (default: the policy's store).")
@directory_option("Repository whose HEAD holds the flag files (default: GITHUB_WORKSPACE or .).")
@click.option("--now", "now_", metavar="ISO-8601", help="Pretend the time is this (testing, replays).")
@click.option("--dry-run", is_flag=True, help="Evaluate gates and print what would change; write nothing.")
@click.option("--manifests", "manifests", metavar="DIR", envvar="GITOPS_FLAGS_MANIFESTS",
              type=click.Path(file_okay=False, path_type=Path),
              help="Write the FeatureFlag manifests (store.manifests) to DIR instead of their target.")
def command(store_url_: str | None, repo: Path | None, now_: str | None, dry_run: bool,
            manifests: Path | None) -> int:
    """Advance running staged rollouts by one stage when due and healthy."""
    options = Options(store_url_, repo, parse_now(now_), dry_run, manifests)
    return run(options, Services(environ=os.environ))


def run(options: Options, services: Services) -> int:
    env = ActionsEnv.from_environ(services.environ)
    now = options.now or services.clock()
    repo = repo_dir(options.repo, env)
    with git.GitTree(repo, "HEAD") as tree:
        policy = read_policy(tree)
        url = resolve_store_url(options.store, policy, repo, in_actions=env.in_actions)
        require_existing(url)
        store = featureflags.wrap(services.open_store(url, env), policy, env=env, repo_dir=repo,
                                  environ=services.environ, now=now, directory=options.manifests)
        channels = _channels(policy, env, services, options.dry_run)
        notice = Notice.of("advance", env, services.environ, policy, writes=not options.dry_run)

        def read(attempt: int) -> StoreSnapshot:  # a store that fails its seal stops the run (exit 1)
            return checked_read(store, notice, warn=attempt == 1)

        def gate(plan: RolloutPlan, rules: egress.Rules) -> GateResult:
            assert plan.health_check is not None
            return health.evaluate(plan.health_check, services.environ, services.session, at=now, rules=rules)

        result = advance.run(store, read, advance.FlagFiles(tree, policy), gate, now, dry_run=options.dry_run,
                             run_url=env.run_url(),
                             outbox=lambda outcomes: notifications(outcomes, channels.outbound, now))
    if result.version is not None:
        echo(f"store {store.where} now at version {result.version[:12]}")
    for outcome in result.outcomes:
        echo(("(dry run) " if options.dry_run and outcome.event else "") + outcome_text(outcome))
    if not result.outcomes:
        echo(f"nothing due ({result.total} rollout{'s' if result.total != 1 else ''} in {store.where}); "
             + next_due_text(result.snapshot, now))
    undelivered: tuple[str, ...] = ()
    version = result.version
    if options.dry_run:
        pending = notify.pending_note(result.latest.outbox)
        if pending:
            echo(f"note: {pending}")
    elif result.latest.outbox:
        undelivered, flushed_version = _deliver(store, result.latest.outbox, result.decision, channels, now)
        version = flushed_version or version
    append_summary(env.summary_path,
                   summary_markdown(result.outcomes, options.dry_run, result.total, undelivered))
    write_outputs(env.output_path, result.outputs(version))
    return max(result.exit_code, finish_manifests(store, dry_run=options.dry_run, notice=notice))


@dataclass(frozen=True)
class _Channels:
    commenter: notify.Notifier | None
    webhook_url: str | None  # a secret: never printed or stored
    outbound: notify.Outbound


def _channels(policy: Policy | None, env: ActionsEnv, services: Services, dry_run: bool) -> _Channels:
    commenter = None if dry_run else (services.commenter or default_commenter)(env)
    webhook_env = policy.options.webhook_env if policy is not None else None
    webhook = (services.environ.get(webhook_env) or None) if webhook_env else None
    outbound = notify.Outbound(notify.run_key(services.environ), comments=commenter is not None,
                               webhook=webhook is not None and not dry_run, repository=env.repository,
                               run_url=env.run_url())
    return _Channels(commenter, webhook, outbound)


def _deliver(store: Store, pending: list[OutboxEntry], decision: Decision, channels: _Channels,
             now: datetime) -> tuple[tuple[str, ...], str | None]:
    """Send the outbox (this run's events, and whatever an earlier run left), then clear it. A failure
    is a warning: the store holds the change, and the entry waits for the next run."""
    own = {e.id for e in notifications(decision.outcomes, channels.outbound, now)}
    flushed = delivery.flush(store, pending, notifier=channels.commenter, webhook_url=channels.webhook_url,
                           now=now, own=own)
    for problem in flushed.problems:
        echo(f"warning: {problem}", err=True)
    return flushed.problems, flushed.version


