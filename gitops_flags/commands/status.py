"""`gitops-flags status [KEY]`: what the store serves per flag and environment, and where rollouts stand.

Reads only the store (and the policy at HEAD, to find the store when `--store` is not given). For each
flag and environment: ENABLED / DISABLED, the default variant, and for a staged rollout its stage k/n,
percentage, status, when the next stage is due and the last gate result.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click

from .. import git, render, rollout
from ..actions_env import ActionsEnv
from ..model import Policy
from ..problems import GitopsFlagsError
from ..store import StoreSnapshot
from ..store.state import RolloutState
from .advance import Services, read_policy, repo_dir, resolve_store_url, when_text
from .clock import parse_now
from .store import Notice, checked_read


@dataclass(frozen=True)
class Row:
    key: str
    environment: str
    state: str  # ENABLED, DISABLED, or "-" when the store has no document entry
    default_variant: str | None
    rollout: RolloutState | None


def rows(snapshot: StoreSnapshot, key: str | None = None) -> list[Row]:
    """Every (flag, environment) in the documents or the rollout state, sorted."""
    found: dict[tuple[str, str], Row] = {}
    for environment, document in snapshot.documents.items():
        flags = document.get("flags") if isinstance(document, dict) else None
        for name, entry in (flags or {}).items():
            if isinstance(entry, dict):
                default = entry.get("defaultVariant")
                found[name, environment] = Row(name, environment, str(entry.get("state", "-")),
                                               default if isinstance(default, str) else None, None)
    for name, envs in snapshot.state.rollouts.items():
        for environment, state in envs.items():
            row = found.get((name, environment)) or Row(name, environment, "-", None, None)
            found[name, environment] = Row(row.key, row.environment, row.state, row.default_variant, state)
    return [row for ident, row in sorted(found.items()) if key is None or row.key == key]


def next_text(state: RolloutState, now: datetime) -> str:
    """When the next step happens, in words."""
    if state.status == "completed":
        return "nothing (completed)"
    if state.status == "paused" and not rollout.retrying(state):
        cause = rollout.pause_cause(state)
        if cause == "kill_switch":
            return "when the flag is enabled again"
        if cause == "plan":
            return "when a pull request sets paused: false"
    if state.status in ("paused", "rolled_back") and not rollout.retrying(state):
        return "waits for a pull request that changes the plan"
    if rollout.due(state, now):
        what = "start" if state.status == "scheduled" else "next stage, gate permitting"
        return f"due now ({what}; at the next run)"
    when = rollout.next_due(state)
    if when is None:
        return "-"
    return f"{when_text(when)} (in {_span(when - now)})"


def row_json(row: Row, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"flag": row.key, "environment": row.environment, "state": row.state,
                           "default_variant": row.default_variant, "rollout": None}
    state = row.rollout
    if state is not None:
        due = rollout.next_due(state)
        out["rollout"] = {
            "variant": state.variant,
            "stage": state.stage_index + 1,
            "stages": len(state.stages),
            "percentage": state.percentage,
            "status": state.status,
            "reason": state.reason,
            "paused_by": state.paused_by,
            "on_failure": state.on_failure,
            "due_now": rollout.due(state, now),
            "next_stage_due": due.isoformat() if due is not None else None,
            "next": next_text(state, now),
            "entered_at": state.entered_at.isoformat() if state.entered_at else None,
            "pr": state.pr,
            "last_gate": state.last_gate.model_dump(mode="json") if state.last_gate else None,
        }
    return out


def text(snapshot_rows: list[Row], now: datetime) -> str:
    lines: list[str] = []
    current = None
    for row in snapshot_rows:
        if row.key != current:
            current = row.key
            lines.append(row.key)
        served = f"{row.state:<8} default {render.plain(row.default_variant or '-', 40)}"
        lines.append(f"  {row.environment:<12} {served}")
        state = row.rollout
        if state is None:
            continue
        lines.append(f"    rollout of {render.plain(state.variant, 40)}: stage {state.stage_index + 1}/"
                     f"{len(state.stages)}, {state.percentage}%, {state.status}"
                     + (f" - {render.plain(state.reason, 200)}" if state.reason else ""))
        lines.append(f"    next: {next_text(state, now)}")
        if state.last_gate is not None:
            gate = state.last_gate
            detail = render.plain(gate.detail, 200)
            lines.append(f"    last gate: {gate.outcome} at {when_text(gate.at)}: {detail}")
    return "\n".join(lines)


def _span(delta: timedelta) -> str:
    """`2d 3h`, `45m`: precise enough to plan around a cron schedule."""
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{mins}m" if mins else ""]
    return " ".join(p for p in parts if p) or "0m"


@click.command(name="status")
@click.argument("key", required=False)
@click.option("--store", "store_url_", metavar="URL", envvar="GITOPS_FLAGS_STORE",
              help="file:PATH, github-branch:BRANCH or litestar-flags:URL (default: the policy's store).")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path),
              help="Repository whose policy names the store (default: GITHUB_WORKSPACE or .).")
@click.option("--now", "now_", metavar="ISO-8601", help="Show due times as of this time.")
@click.option("--format", "format_", type=click.Choice(["text", "json"]), default="text", show_default=True)
def command(key: str | None, store_url_: str | None, repo: Path | None, now_: str | None, format_: str
            ) -> int:
    """Show served state and rollout progress per environment."""
    return run(key, store_url_, repo, parse_now(now_), format_, Services(environ=os.environ))


def run(key: str | None, store: str | None, repo: Path | None, now: datetime | None, format_: str,
        services: Services) -> int:
    env = ActionsEnv.from_environ(services.environ)
    now = now or services.clock()
    directory = repo_dir(repo, env)
    policy: Policy | None = None
    if store is None:
        try:
            tree = git.GitTree(directory, "HEAD")
        except GitopsFlagsError:
            tree = None  # not a git repository (or no commit yet): the default store
        if tree is not None:
            with tree:
                policy = read_policy(tree)
    url = resolve_store_url(store, policy, directory, in_actions=env.in_actions)
    snapshot = checked_read(services.open_store(url, env), Notice.of("status", env, services.environ, policy))
    found = rows(snapshot, key)
    if format_ == "json":
        data = {"store": url, "version": snapshot.version, "applied_commit": snapshot.state.applied_commit,
                "now": now.isoformat(), "flags": [row_json(row, now) for row in found]}
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
    elif found:
        click.echo(text(found, now))
    elif snapshot.version is None:
        click.echo(f"the store {url} is empty (nothing applied yet)")
    if key is not None and not found:
        click.echo(f"no flag {key!r} in the store {url}", err=True)
        return 1
    return 0
