"""`gitops-flags advance`: move each due staged rollout one stage on, when its health gate allows.

Flow: store snapshot → the flag files at the repository's HEAD (the default branch in the scheduled
workflow) → for each rollout that is due and whose plan at HEAD is the applied one: run its gate →
`rollout.advance` → recompile that flag's flagd entry → one compare-and-swap write of state, documents and
audit lines. On a conflict (another run wrote first) it reads again and decides again, reusing the gate
results it already has, so two concurrent runs make one advance. Then it reports each event: stdout, the
job summary, a comment on the PR that started the rollout, and the policy's webhook. The comments and the
webhook message travel in the store's outbox, written with the events (see `notify.flush`), so a run that
dies after its write leaves them for the next `advance` or `apply` to send.

Advance changes only rollout percentages. The flag at HEAD is used for the gate definition and to
recompile the entry, so it must be what apply last applied: a rollout whose plan or flag entry at HEAD
differs from the store (a merge apply has not processed yet, or a change apply refused) is left alone.

Exit codes: 0 normally, 1 when a gate failed or was inconclusive, 2 for configuration errors.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import requests

from .. import flagd, git, health, notify, render, rollout, validate
from ..actions_env import ActionsEnv, append_summary
from ..inert import echo
from ..model import POLICY_PATH, Flag, Policy, RolloutPlan
from ..problems import GitopsFlagsError, Problem
from ..store import ConflictError, Store, StoreSnapshot, Update, featureflags
from ..store.state import GateResult, OutboxEntry, RolloutState, StoreState, plan_hash
from ..tree import Tree
from .apply import default_store_opener, default_store_url
from .clock import parse_now
from .location import require_existing
from .manifests import finish as finish_manifests
from .options import directory_option
from .store import Notice, checked_read

ATTEMPTS = 5


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

        return notify.GitHubCommenter(github.GitHubClient(github.connect(env.api_url, env.token),
                                                          env.repository))
    return None


# --- locating the repository, the policy and the store (shared with `status`) -------------------------


def repo_dir(option: Path | None, env: ActionsEnv) -> Path:
    return option or Path(env.workspace or ".")


def read_policy(tree: Tree) -> Policy | None:
    """The policy at HEAD; None when there is none (defaults apply); an invalid one is an error."""
    if tree.read(POLICY_PATH) is None:
        return None
    policy, problems = validate.read_policy(tree)
    if policy is None:
        listed = "; ".join(f"{p.location()}: {p.message}" for p in problems if p.severity == "error")
        raise GitopsFlagsError(f"the policy cannot be used: {listed}")
    return policy


def resolve_store_url(option: str | None, policy: Policy | None, repo: Path, *, in_actions: bool = False
                      ) -> str:
    """`--store` as given; else the policy's store (a file store's path is taken from the repository
    root); else `github-branch:flag-store` in Actions and `file:.flag-store` in the repository elsewhere.
    The same default as apply's."""
    return option or default_store_url(policy, repo, in_actions=in_actions)


# --- one rollout and what HEAD says about it ---------------------------------------------------------


@dataclass(frozen=True)
class Head:
    """A flag file at HEAD: the flag, or why it cannot be used."""

    path: str | None
    flag: Flag | None
    problem: str | None = None


class FlagFiles:
    """Flag files at HEAD found by key (the file's stem), read on first use."""

    def __init__(self, tree: Tree, policy: Policy | None) -> None:
        self._tree = tree
        self._policy = policy
        # What gates may send and reach: the policy at HEAD of the default branch (reviewed, merged).
        self.gate_rules = policy.health_checks.rules() if policy is not None else health.NO_RULES
        self._index: dict[str, list[str]] | None = None
        self._read: dict[str, Head] = {}

    def get(self, key: str) -> Head:
        if key not in self._read:
            self._read[key] = self._load(key)
        return self._read[key]

    def _load(self, key: str) -> Head:
        if self._index is None:
            flags_dir = (self._policy.flags_dir if self._policy else "flags").strip("/")
            self._index = {}
            for path in self._tree.paths(flags_dir + "/"):
                if validate.is_flag_path(path, self._policy):
                    stem = posixpath.splitext(posixpath.basename(path))[0]
                    self._index.setdefault(stem, []).append(path)
        paths = self._index.get(key, [])
        if not paths:
            return Head(None, None)
        if len(paths) > 1:
            return Head(paths[0], None, f"more than one file defines {key}: {', '.join(paths)}")
        flag, problems = validate.read_flag(self._tree, paths[0])
        if flag is None:
            errors = [p for p in problems if p.severity == "error"]
            errors = errors or [Problem(paths[0], None, None, "unreadable")]
            return Head(paths[0], None, "; ".join(f"{p.location()}: {p.message}" for p in errors[:3]))
        return Head(paths[0], flag)


class MissingGate(KeyError):
    """decide() was called without the gate result a due rollout needs (a bug in the caller)."""


@dataclass(frozen=True)
class Outcome:
    """What this run found or did for one (flag, environment) rollout."""

    key: str
    environment: str
    before: RolloutState
    after: RolloutState
    event: rollout.Event | None = None
    gate: GateResult | None = None
    note: str = ""  # why nothing happened (waiting for apply, frozen, ...)
    problem: bool = False  # a configuration error (exit 2)

    @property
    def ident(self) -> str:
        return f"{self.key}@{self.environment}"


@dataclass(frozen=True)
class Decision:
    outcomes: tuple[Outcome, ...]
    update: Update | None


def blocker(key: str, environment: str, state: RolloutState, head: Head, snapshot: StoreSnapshot
            ) -> tuple[str, bool] | None:
    """Why advance must leave this rollout alone (message, is a configuration error), or None."""
    if head.problem is not None:
        return f"the flag file {head.path} cannot be read at HEAD: {head.problem}", True
    pending = "waiting for apply: "
    if head.flag is None:
        return pending + f"no flag file defines {key} at HEAD", False
    env = head.flag.environments.get(environment)
    if env is None or env.rollout is None:
        return pending + f"the rollout in {environment} was removed at HEAD", False
    if plan_hash(env.rollout) != state.plan_hash:
        return pending + f"the rollout plan at HEAD ({head.path}) is not the one applied", False
    entry = _entry(snapshot, key, environment)
    if entry is None:
        return f"the store has no {environment} entry for {key} (run apply to repair it)", True
    try:
        expected = flagd.compile_flag(head.flag, environment, state, _commit(snapshot, entry, environment))
    except GitopsFlagsError as exc:
        return f"{head.path}: {exc}", True
    if _without_metadata(expected) != _without_metadata(entry):
        return pending + f"{head.path} at HEAD differs from what the store serves", False
    if not env.enabled:
        return "frozen: the flag is disabled here (kill switch)", False
    return None


def decide(snapshot: StoreSnapshot, heads: Callable[[str], Head], gates: Mapping[tuple[str, str], GateResult],
           now: datetime, run_url: str | None = None) -> Decision:
    """Pure: what this run does, given the store, the flags at HEAD and the gate results at hand (a due
    rollout that needs a gate and has none in `gates` is left for the caller to evaluate first)."""
    state = snapshot.state
    documents = {env: dict(doc) for env, doc in snapshot.documents.items()}
    outcomes: list[Outcome] = []
    audit: list[dict[str, Any]] = []
    for key in sorted(state.rollouts):
        for environment, current in sorted(state.rollouts[key].items()):
            try:  # one rollout's bad state or flag file must not stop the others: it is reported instead
                if not rollout.due(current, now):
                    continue
                head = heads(key)
                blocked = blocker(key, environment, current, head, snapshot)
                if blocked is not None:
                    note, problem = blocked
                    outcomes.append(Outcome(key, environment, current, current, note=note, problem=problem))
                    continue
                assert head.flag is not None
                plan = _plan(head.flag, environment)
                gate = gates.get((key, environment)) if plan.health_check is not None else None
                if rollout.needs_gate(current, now) and plan.health_check is not None and gate is None:
                    raise MissingGate(f"no gate result for {key}@{environment}")  # the caller's mistake
                new, event = rollout.advance(current, now, gate, plan.on_failure)
                if event is not None:
                    entry = _entry(snapshot, key, environment)
                    assert entry is not None  # blocker() checked
                    compiled = flagd.compile_flag(head.flag, environment, new,
                                                  _commit(snapshot, entry, environment))
            except MissingGate:
                raise
            except Exception as exc:
                note = f"cannot advance this rollout: {type(exc).__name__}: {exc}"
                outcomes.append(Outcome(key, environment, current, current, note=note, problem=True))
                continue
            outcomes.append(Outcome(key, environment, current, new, event, gate))
            if event is None:
                continue
            state = state.with_rollout(key, environment, new)
            doc = documents[environment]
            documents[environment] = {**doc, "flags": {**doc["flags"], key: compiled}}
            audit.append(audit_record(key, environment, current, event, run_url))
    if not audit:
        return Decision(tuple(outcomes), None)
    events = ", ".join(f"{o.ident} {o.event.kind}" for o in outcomes if o.event)
    update = Update(state, documents, audit, f"gitops-flags advance: {events}")
    return Decision(tuple(outcomes), update)


def gates_needed(snapshot: StoreSnapshot, heads: Callable[[str], Head], now: datetime
                 ) -> list[tuple[str, str, RolloutPlan]]:
    """The (flag, environment, plan) whose gate this run must evaluate before deciding."""
    wanted = []
    for key in sorted(snapshot.state.rollouts):
        for environment, current in sorted(snapshot.state.rollouts[key].items()):
            try:
                if not rollout.needs_gate(current, now):
                    continue
                head = heads(key)
                if blocker(key, environment, current, head, snapshot) is not None or head.flag is None:
                    continue
                plan = _plan(head.flag, environment)
            except Exception:  # decide() reports it, for this rollout only
                continue
            if plan.health_check is not None:
                wanted.append((key, environment, plan))
    return wanted


def audit_record(key: str, environment: str, before: RolloutState, event: rollout.Event,
                 run_url: str | None) -> dict[str, Any]:
    summary = f"{event.kind} {event.before}% → {event.after}% (stage {event.stage_label})"
    record: dict[str, Any] = {
        "time": event.at.isoformat().replace("+00:00", "Z"),  # the same form as apply's records
        "command": "advance",
        "change_type": "rollout",
        "event": event.kind,
        "summary": f"{summary}: {event.reason}" if event.reason else summary,
        "kind": "flag",
        "key": key,
        "flag": key,
        "environment": environment,
        "variant": before.variant,
        "before": {"percentage": before.percentage, "status": before.status},
        "after": {"percentage": event.after, "stage": event.stage_label, "status": _status_after(event)},
        "pr": before.pr,
    }
    if event.reason:
        record["reason"] = event.reason
    if event.gate is not None:
        record["gate"] = event.gate.model_dump(mode="json")
    if run_url:
        record["run_url"] = run_url
    return record


def _status_after(event: rollout.Event) -> str:
    return {"advanced": "running", "started": "running", "resumed": "running"}.get(event.kind, event.kind)


def _plan(flag: Flag, environment: str) -> RolloutPlan:
    plan = flag.environments[environment].rollout
    assert plan is not None  # blocker() checked
    return plan


def _entry(snapshot: StoreSnapshot, key: str, environment: str) -> dict[str, Any] | None:
    flags = snapshot.documents.get(environment, {}).get("flags")
    entry = flags.get(key) if isinstance(flags, dict) else None
    return entry if isinstance(entry, dict) else None


def _commit(snapshot: StoreSnapshot, entry: Mapping[str, Any], environment: str) -> str:
    """The commit apply compiled the entry from (kept: advance changes no flag definition)."""
    for metadata in (entry.get("metadata"), snapshot.documents.get(environment, {}).get("metadata")):
        if isinstance(metadata, dict) and isinstance(metadata.get("gitopsCommit"), str):
            return str(metadata["gitopsCommit"])
    return snapshot.state.applied_commit or ""


def _without_metadata(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k != "metadata"}


# --- reporting (pure text) -----------------------------------------------------------------------------


def next_due_text(snapshot: StoreSnapshot, now: datetime) -> str:
    """When the next stage of any rollout is due: `the next stage is due 2026-12-01 13:00 UTC (…)`."""
    due = [(when, key, env) for key, envs in snapshot.state.rollouts.items() for env, state in envs.items()
           if state.status in ("running", "scheduled") and (when := rollout.next_due(state)) is not None]
    if not due:
        return "no rollout is waiting for a stage"
    when, key, env = min(due)
    return f"the next stage is due {when_text(when)} ({key} in {env}, in {span_text(when - now)})"


def span_text(delta: timedelta) -> str:
    """`2d 3h`, `45m`: precise enough to plan around a cron schedule."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return " ".join(p for p in parts if p) or "0m"


def when_text(value: datetime | None) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC") if value else "-"


def outcome_text(outcome: Outcome) -> str:
    """One plain line: stdout and the webhook's `text`."""
    event, after, variant = outcome.event, outcome.after, outcome.after.variant
    gate = f"; gate {outcome.gate.outcome}: {render.plain(outcome.gate.detail, 200)}" if outcome.gate else ""
    head = f"{outcome.ident} ({variant})"
    if event is None:
        if outcome.note:
            return f"{head}: {outcome.note}"
        return f"{head}: still paused at {after.percentage}%{gate} (the gate is retried at each run)"
    if event.kind == "started":
        return f"{head}: started at {event.after}% (stage {event.stage_label})"
    if event.kind == "advanced":
        due = when_text(rollout.next_due(after))
        stage = f"(stage {event.stage_label})"
        return f"{head}: {event.before}% → {event.after}% {stage}{gate}; next stage due {due}"
    if event.kind == "completed":
        return f"{head}: completed, {event.before}% → 100% (stage {event.stage_label}){gate}"
    if event.kind == "rolled_back":
        return f"{head}: ROLLED BACK {event.before}% → 0%: {render.plain(event.reason, 300)}"
    return f"{head}: paused at {event.after}%: {render.plain(event.reason, 300)}"


def comment_body(outcome: Outcome, run_url: str | None) -> str:
    """The PR comment: text from gates (remote answers) is escaped, names are code spans."""
    event = outcome.event
    assert event is not None
    what = {
        "started": f"started at **{event.after}%**",
        "advanced": f"advanced **{event.before}% → {event.after}%**",
        "completed": "**completed** (100%)",
        "rolled_back": f"**rolled back** {event.before}% → 0%",
        "paused": f"**paused** at {event.after}%",
    }.get(event.kind, event.kind)
    lines = [
        f"**gitops-flags rollout**: {render.code(outcome.key)} in {render.code(outcome.environment)} "
        f"(variant {render.code(outcome.after.variant)}) {what}, stage {event.stage_label}.",
        "",
    ]
    if outcome.gate is not None:
        lines.append(f"- Health gate: {outcome.gate.outcome}: {render.escape_md(outcome.gate.detail, 300)}")
    if event.reason and event.kind in ("paused", "rolled_back"):
        lines.append(f"- Reason: {render.escape_md(event.reason, 300)}")
        lines.append("- It stays so until a pull request changes the rollout plan (see docs/rollouts.md).")
    due = rollout.next_due(outcome.after)
    if event.kind in ("started", "advanced") and due is not None:
        lines.append(f"- Next stage due: {when_text(due)} (if the gate passes)")
    if run_url:
        lines.append(f"- [Workflow run]({run_url})")
    return "\n".join(lines) + "\n"


def summary_markdown(outcomes: tuple[Outcome, ...], dry_run: bool, total: int,
                     undelivered: tuple[str, ...] = ()) -> str:
    title = "### gitops-flags advance" + (" (dry run)" if dry_run else "")
    lines = [title, ""]
    shown = [o for o in outcomes if o.event or o.note or o.gate]
    for outcome in shown:
        lines.append(f"- {render.escape_md(outcome_text(outcome), 600)}")
    if not shown:
        lines.append(f"Nothing due ({total} rollout{'s' if total != 1 else ''} in the store).")
    lines += notify.undelivered_markdown(undelivered)
    return "\n".join(lines) + "\n"


def notifications(outcomes: tuple[Outcome, ...], outbound: notify.Outbound, now: datetime
                  ) -> list[OutboxEntry]:
    """The outbox entries of this run's events: a comment per event on the PR that started the rollout,
    one webhook message. Pure. A comment's id names the event (flag, environment, kind, time), so it is
    the same whichever run writes it."""
    events = [o for o in outcomes if o.event is not None]
    entries: list[OutboxEntry] = []
    for outcome in events:
        assert outcome.event is not None
        pr = outcome.before.pr
        if outbound.comments and pr is not None:
            at = outcome.event.at.astimezone(UTC).isoformat().replace("+00:00", "Z")
            entry_id = f"advance:{outcome.ident}:{outcome.event.kind}:{at}:pr-{pr}"
            body = notify.outbox_marker(entry_id) + "\n" + comment_body(outcome, outbound.run_url)
            entries.append(OutboxEntry(id=entry_id, kind="pr_comment", pr=pr, body=body, created_at=now))
    if outbound.webhook and events:
        entry_id = f"advance:{outbound.run_key}:webhook"
        payload = webhook_payload(events, outbound.repository, outbound.run_url, entry_id)
        entries.append(OutboxEntry(id=entry_id, kind="webhook", payload=payload, created_at=now))
    return entries


def exit_code(outcomes: tuple[Outcome, ...]) -> int:
    if any(o.problem for o in outcomes):
        return 2
    if any(o.gate is not None and o.gate.outcome != "passed" for o in outcomes):
        return 1
    return 0


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
        files = FlagFiles(tree, policy)
        channels = _channels(policy, env, services, options.dry_run)
        notice = Notice.of("advance", env, services.environ, policy, writes=not options.dry_run)
        decision, snapshot, latest = _decide_and_write(store, files, now, options, services, env,
                                                       channels.outbound, notice)
    for outcome in decision.outcomes:
        echo(("(dry run) " if options.dry_run and outcome.event else "") + outcome_text(outcome))
    total = sum(len(envs) for envs in snapshot.state.rollouts.values())
    if not decision.outcomes:
        echo(f"nothing due ({total} rollout{'s' if total != 1 else ''} in {store.where}); "
                   + next_due_text(snapshot, now))
    undelivered: tuple[str, ...] = ()
    if options.dry_run:
        pending = notify.pending_note(latest.outbox)
        if pending:
            echo(f"note: {pending}")
    elif latest.outbox:
        undelivered = _deliver(store, latest.outbox, decision, channels, now)
    append_summary(env.summary_path, summary_markdown(decision.outcomes, options.dry_run, total, undelivered))
    return max(exit_code(decision.outcomes), finish_manifests(store, dry_run=options.dry_run, notice=notice))


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


def _decide_and_write(store: Store, files: FlagFiles, now: datetime, options: Options, services: Services,
                      env: ActionsEnv, outbound: notify.Outbound, notice: Notice
                      ) -> tuple[Decision, StoreSnapshot, StoreState]:
    """The decision, the snapshot it was made on, and the state now in the store (its outbox is what
    is left to deliver). A store that fails its seal stops the run (exit 1) before anything is decided."""
    gates: dict[tuple[str, str], GateResult] = {}
    for attempt in range(1, ATTEMPTS + 1):
        snapshot = checked_read(store, notice, warn=attempt == 1)
        for key, environment, plan in gates_needed(snapshot, files.get, now):
            if (key, environment) not in gates:
                assert plan.health_check is not None
                gates[key, environment] = health.evaluate(
                    plan.health_check, services.environ, services.session, at=now, rules=files.gate_rules)
        decision = decide(snapshot, files.get, gates, now, env.run_url())
        if decision.update is None or options.dry_run:
            return decision, snapshot, snapshot.state
        # The notifications of these events travel in the same write as the events.
        entries = notifications(decision.outcomes, outbound, now)
        update = replace(decision.update, state=decision.update.state.with_outbox(entries))
        try:
            version = store.write(
                update.state, update.documents, snapshot.version, update.audit, update.message)
        except ConflictError:
            if attempt == ATTEMPTS:
                raise
            continue  # another run wrote first: read again, decide again
        echo(f"store {store.where} now at version {version[:12]}")
        return decision, snapshot, update.state
    raise AssertionError("unreachable")  # pragma: no cover


def _deliver(store: Store, pending: list[OutboxEntry], decision: Decision, channels: _Channels,
             now: datetime) -> tuple[str, ...]:
    """Send the outbox (this run's events, and whatever an earlier run left), then clear it. A failure
    is a warning: the store holds the change, and the entry waits for the next run."""
    own = {e.id for e in notifications(decision.outcomes, channels.outbound, now)}
    flushed = notify.flush(store, pending, notifier=channels.commenter, webhook_url=channels.webhook_url,
                           now=now, own=own)
    for problem in flushed.problems:
        echo(f"warning: {problem}", err=True)
    return flushed.problems


def webhook_payload(events: list[Outcome], repository: str, run_url: str | None,
                    notification_id: str | None = None) -> dict[str, Any]:
    """One message per run: a Slack-compatible `text` (Slack escapes &, < and >) and the same facts
    as data, in the shape apply's webhook uses (`id` names the notification, for deduplication)."""
    lines = [f"gitops-flags advance on {repository or 'the flag repository'}:"]
    lines += [outcome_text(o) for o in events]
    if run_url:
        lines.append(run_url)
    text = "\n".join(render.plain(line, 500) for line in lines)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    rollouts = []
    for o in events:
        assert o.event is not None
        rollouts.append({
            "flag": o.key, "environment": o.environment, "variant": o.after.variant, "event": o.event.kind,
            "before": o.event.before, "after": o.event.after, "stage": o.event.stage_label,
            "reason": o.event.reason, "gate": o.gate.model_dump(mode="json") if o.gate else None,
            "pr": o.before.pr,
        })
    data = {"event": "advance", "id": notification_id, "repository": repository, "run_url": run_url,
            "rollouts": rollouts}
    return {"text": text, "gitops_flags": data}
