"""`gitops-flags status [KEY]`: what the store serves per flag and environment, and where rollouts stand.

Reads the store (and the policy at HEAD, to find the store when `--store` is not given). For each flag and
environment: what is served — to everyone, or by targeting rule (name → variant) and then the rollout's
split — read from the flagd entry the store serves, so a rollout completed at 100% says `on` to everyone;
the rollout's stage k/n, status, when the next stage is due and the last gate; the commit applied and when;
the store's seal; and drift: when the repository has the applied commit, each entry is compared with what
that commit's flag file compiles to (a hand edit of the store shows up here).
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from .. import flagd, git, render, rollout
from ..actions_env import ActionsEnv
from ..inert import echo, json_text
from ..model import Policy
from ..problems import GitopsFlagsError
from ..store import StoreSnapshot
from ..store.state import RolloutState
from .advance import FlagFiles, Services, read_policy, repo_dir, resolve_store_url, span_text, when_text
from .clock import parse_now
from .location import INIT_HINT, require_existing
from .options import directory_option
from .store import Notice, StoreRefused, checked_read

DRIFT_CHECK_MAX = 500  # flag entries compared with the applied commit without a KEY (each reads a file)


@dataclass(frozen=True)
class Row:
    key: str
    environment: str
    state: str  # ENABLED, DISABLED, or "-" when the store has no document entry
    default_variant: str | None
    rollout: RolloutState | None
    entry: Mapping[str, Any] | None = None  # the flagd entry the store serves
    rule_names: tuple[str | None, ...] = ()  # from the flag file at the applied commit, when readable
    drift: str = ""  # how the entry differs from what the applied commit compiles to


def rows(snapshot: StoreSnapshot, key: str | None = None) -> list[Row]:
    """Every (flag, environment) in the documents or the rollout state, sorted."""
    found: dict[tuple[str, str], Row] = {}
    for environment, document in snapshot.documents.items():
        flags = document.get("flags") if isinstance(document, dict) else None
        for name, entry in (flags or {}).items():
            if isinstance(entry, dict):
                default = entry.get("defaultVariant")
                found[name, environment] = Row(name, environment, flagd.served_state(entry),
                                               default if isinstance(default, str) else None, None, entry)
    for name, envs in snapshot.state.rollouts.items():
        for environment, state in envs.items():
            row = found.get((name, environment)) or Row(name, environment, "-", None, None)
            found[name, environment] = Row(row.key, row.environment, row.state, row.default_variant, state,
                                           row.entry)
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
    return f"{when_text(when)} (in {span_text(when - now)})"


# --- what is served (pure: read back from the flagd entry) ---------------------------------------------


@dataclass(frozen=True)
class Served:
    enabled: bool
    default_variant: str | None
    rules: tuple[tuple[str, str], ...] = ()  # (condition in words, variant), first match wins
    split: tuple[tuple[str, int], ...] = ()  # (variant, percentage) for everyone no rule matched
    unknown: bool = False  # targeting this reader does not understand (shown raw in JSON)
    names: tuple[str | None, ...] = field(default=())

    def everyone_else(self) -> str | None:
        """The one variant served to everyone no rule matches, or None under a split."""
        if len(self.split) == 1:
            return self.split[0][0]
        return None if self.split else self.default_variant

    def rule_name(self, index: int) -> str:
        name = self.names[index] if index < len(self.names) else None
        return name or f"rule {index + 1}"

    def text(self) -> str:
        if not self.enabled:
            return f"{self.default_variant} to everyone: disabled (kill switch)"
        if self.unknown:
            return "targeting this version of status cannot read (see --format json)"
        parts = [f"{self.rule_name(i)} ({when}) → {variant}" for i, (when, variant) in enumerate(self.rules)]
        rest = self.everyone_else()
        who = "everyone else" if self.rules else "everyone"
        if rest is not None:
            parts.append(f"{rest} to {who}")
        else:
            parts.append(", ".join(f"{v} to {p}%" for v, p in self.split) + f" of {who}")
        return "; ".join(parts)

    def to_json(self, targeting: Any) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "summary": self.text(),
            "default_variant": self.default_variant,
            "rules": [{"name": self.names[i] if i < len(self.names) else None, "when": when, "variant": v}
                      for i, (when, v) in enumerate(self.rules)],
            "everyone_else": self.everyone_else() if self.enabled else None,
            "split": [{"variant": v, "percentage": p} for v, p in self.split],
            "targeting": targeting if self.unknown else None,
        }


def served(entry: Mapping[str, Any] | None, names: tuple[str | None, ...] = ()) -> Served | None:
    """What a flagd entry serves: its `if` chain read back as rules, then the fractional split or variant."""
    if entry is None:
        return None
    default = entry.get("defaultVariant")
    default = default if isinstance(default, str) else None
    if flagd.served_state(entry) == "DISABLED":
        return Served(False, default, names=names)
    rules: list[tuple[str, str]] = []
    expression = entry.get("targeting")
    known = flagd.stored_rules(entry)  # the file's rules, as words, beside their guarded JSONLogic
    if known is not None:
        rules, expression = known
    while _is_if(expression):
        assert isinstance(expression, dict)
        condition, then, otherwise = expression["if"]
        if condition is True and isinstance(then, str):
            expression = then
            break
        if not isinstance(then, str):
            return Served(True, default, unknown=True, names=names)
        rules.append((condition_text(condition), then))
        expression = otherwise
    if expression is None:
        split: tuple[tuple[str, int], ...] = ((default, 100),) if default else ()
    elif isinstance(expression, str):
        split = ((expression, 100),)
    elif isinstance(expression, dict) and isinstance(expression.get("fractional"), list):
        pairs = [p for p in expression["fractional"] if isinstance(p, list) and len(p) == 2]
        split = tuple((str(v), int(w)) for v, w in pairs if isinstance(w, int | float))
    else:
        return Served(True, default, tuple(rules), unknown=True, names=names)
    return Served(True, default, tuple(rules), split, names=names)


def _is_if(expression: Any) -> bool:
    branches = expression.get("if") if isinstance(expression, dict) else None
    return isinstance(branches, list) and len(branches) == 3


_OPS = {"==": "equals", "!=": "not_equals", ">": ">", ">=": ">=", "<": "<", "<=": "<=", "in": "in",
        "starts_with": "starts_with", "ends_with": "ends_with", "sem_ver": "semver"}


def condition_text(logic: Any) -> str:
    """A compiled condition in words: `email ends_with "@acme.com"`, `country in ["DE", "FR"]`."""
    if isinstance(logic, dict) and len(logic) == 1:
        [(op, args)] = logic.items()
        if op in ("and", "or") and isinstance(args, list):
            return f" {op} ".join(condition_text(a) for a in args)
        if op == "!" and isinstance(args, list) and len(args) == 1:
            inner = condition_text(args[0])
            return inner.replace(" in ", " not_in ", 1) if " in " in inner else f"not ({inner})"
        if op in _OPS and isinstance(args, list) and args:
            values = [a["var"] if isinstance(a, dict) and set(a) == {"var"} else json.dumps(a) for a in args]
            if op == "in" and not isinstance(args[0], dict) and len(args) == 2:  # contains
                return f"{values[1]} contains {values[0]}"
            return f"{values[0]} {_OPS[op]} {' '.join(values[1:])}"
    return render.plain(json.dumps(logic, sort_keys=True), 120)


# --- drift: the store against the applied commit -----------------------------------------------------


def drift_text(row: Row, files: FlagFiles, commit: str) -> tuple[str, tuple[str | None, ...]]:
    """(how the stored entry differs from what the applied commit compiles to, the rules' names)."""
    if row.entry is None:
        return "", ()
    head = files.get(row.key)
    if head.flag is None or row.environment not in head.flag.environments:
        return "", ()  # removed since, or unreadable: apply reports those
    names = tuple(r.name for r in head.flag.environments[row.environment].rules)
    try:
        expected = flagd.compile_flag(head.flag, row.environment, row.rollout, commit)
    except GitopsFlagsError:
        return "", names
    stored = {k: v for k, v in row.entry.items() if k != "metadata"}
    if {k: v for k, v in expected.items() if k != "metadata"} != stored:
        changed = sorted(k for k in set(expected) | set(stored) if k != "metadata"
                         and expected.get(k) != stored.get(k))
        return (f"the store serves something other than {head.path} at {commit[:12]} compiles to "
                f"({', '.join(changed)}): a hand edit? See docs/store.md, 'Hand edits'"), names
    return "", names


def with_drift(found: list[Row], repo: Path, commit: str | None, policy: Policy | None, check: bool
               ) -> tuple[list[Row], str]:
    """The rows with rule names and drift filled in from the applied commit, and a note on what was not
    checked (no repository, commit not in it, too many flags)."""
    if not commit:
        return found, ""
    if not check:
        return found, f"drift not checked for {len(found)} entries (more than {DRIFT_CHECK_MAX}; pass a KEY)"
    try:
        tree = git.GitTree(repo, commit)
    except GitopsFlagsError:
        return found, f"drift not checked: the applied commit {commit[:12]} is not in {repo}"
    out = []
    with tree:
        files = FlagFiles(tree, policy)
        for row in found:
            try:  # one flag's bad file or entry must not hide the others
                drift, names = drift_text(row, files, commit)
            except Exception as exc:
                drift, names = f"cannot compare with the flag file ({type(exc).__name__})", row.rule_names
            out.append(Row(row.key, row.environment, row.state, row.default_variant, row.rollout, row.entry,
                           names, drift))
    return out, ""


# --- output ---------------------------------------------------------------------------------------------


def row_json(row: Row, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"flag": row.key, "environment": row.environment, "state": row.state,
                           "default_variant": row.default_variant, "rollout": None,
                           "drift": row.drift or None}
    what = served(row.entry, row.rule_names)
    out["served"] = what.to_json(row.entry.get("targeting") if row.entry else None) if what else None
    state = row.rollout
    if state is not None:
        due = rollout.next_due(state)
        out["rollout"] = {
            "variant": state.variant,
            "stage": state.stage_index + 1,
            "stages": len(state.stages),
            "stage_percentages": list(state.stages),
            "percentage": state.percentage,
            "served_percentage": flagd.served_percentage(state),
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


def header(url: str, snapshot: StoreSnapshot) -> list[str]:
    """Where the store is, what it was last applied from and when, and its seal."""
    applied = snapshot.state.applied_commit
    at = last_applied_at(snapshot)
    lines = [f"store {url} (version {render.plain((snapshot.version or '-')[:12])}, seal: {snapshot.seal})"]
    lines.append(f"applied commit {applied[:12] if applied else '-'}"
                 + (f" at {when_text(at)}" if at else ""))
    return lines


def last_applied_at(snapshot: StoreSnapshot) -> datetime | None:
    times = [u.succeeded_at for u in snapshot.state.units if u.succeeded_at is not None]
    return max(times) if times else None


def text(snapshot_rows: list[Row], now: datetime) -> str:
    lines: list[str] = []
    current = None
    for row in snapshot_rows:
        if row.key != current:
            current = row.key
            lines.append(row.key)
        what = served(row.entry, row.rule_names)
        shown = render.plain(what.text(), 400) if what else "nothing: not in the store's flagd document"
        lines.append(f"  {row.environment:<12} {row.state:<8} serves {shown}")
        if row.drift:
            lines.append(f"    DRIFT: {render.plain(row.drift, 400)}")
        state = row.rollout
        if state is None:
            continue
        try:  # one rollout's bad state must not hide the others
            lines += _rollout_lines(state, now)
        except Exception as exc:
            lines.append(f"    rollout: cannot show it ({type(exc).__name__}: {render.plain(str(exc), 200)})")
    return "\n".join(lines)


def _rollout_lines(state: RolloutState, now: datetime) -> list[str]:
    stages = " → ".join(f"{p}%" for p in state.stages)
    lines = [f"    rollout of {render.plain(state.variant, 40)}: stage {state.stage_index + 1}/"
             f"{len(state.stages)} ({stages}), {state.percentage}%, {state.status}"
             + (f" - {render.plain(state.reason, 200)}" if state.reason else ""),
             f"    next: {next_text(state, now)}"]
    if state.last_gate is not None:
        gate = state.last_gate
        detail = render.plain(gate.detail, 200)
        lines.append(f"    last gate: {gate.outcome} at {when_text(gate.at)}: {detail}")
    return lines


def _row_json_or_error(row: Row, now: datetime) -> dict[str, Any]:
    try:  # one rollout's bad state must not hide the others
        return row_json(row, now)
    except Exception as exc:
        return {"flag": row.key, "environment": row.environment, "error": f"{type(exc).__name__}: {exc}"}


@click.command(name="status")
@click.argument("key", required=False)
@click.option("--store", "store_url_", metavar="URL", envvar="GITOPS_FLAGS_STORE",
              help="file:PATH, github-branch:BRANCH or litestar-flags:URL (default: the policy's store).")
@directory_option("Repository whose policy names the store and whose applied commit is compared with "
                  "the store (default: GITHUB_WORKSPACE or .).")
@click.option("--now", "now_", metavar="ISO-8601", help="Show due times as of this time.")
@click.option("--format", "format_", type=click.Choice(["text", "json"]), default="text", show_default=True)
def command(key: str | None, store_url_: str | None, repo: Path | None, now_: str | None, format_: str
            ) -> int:
    """Show what is served per environment: rules, split, rollout stage, applied commit, drift."""
    return run(key, store_url_, repo, parse_now(now_), format_, Services(environ=os.environ))


def run(key: str | None, store: str | None, repo: Path | None, now: datetime | None, format_: str,
        services: Services) -> int:
    env = ActionsEnv.from_environ(services.environ)
    now = now or services.clock()
    directory = repo_dir(repo, env)
    policy: Policy | None = None
    try:
        tree = git.GitTree(directory, "HEAD")
    except GitopsFlagsError:
        tree = None  # not a git repository (or no commit yet): the default store, no drift check
    if tree is not None:
        with tree:
            policy = read_policy(tree)
    url = resolve_store_url(store, policy, directory, in_actions=env.in_actions)
    require_existing(url)
    notice = Notice.of("status", env, services.environ, policy)
    try:
        snapshot = checked_read(services.open_store(url, env), notice)
    except StoreRefused as exc:
        if format_ == "json":  # what a dashboard reads says why there is nothing else to show
            echo(json_text({"store": url, "version": None, "seal": exc.seal, "refused": exc.problem},
                           indent=2, ensure_ascii=False))
        raise
    if snapshot.version is None:
        raise GitopsFlagsError(f"no flag store at {url}: nothing was ever written there. Check --store (or "
                               f"the policy's store); {INIT_HINT}")
    everything = rows(snapshot)
    found = [row for row in everything if key is None or row.key == key]
    if key is not None and not found:
        near = difflib.get_close_matches(key, sorted({row.key for row in everything}), n=3)
        hint = f"; did you mean {', '.join(near)}?" if near else ""
        echo(f"error: no flag {key!r} in the store {url}{hint}", err=True)
        return 1
    found, note = with_drift(found, directory, snapshot.state.applied_commit, policy,
                             key is not None or len(found) <= DRIFT_CHECK_MAX)
    if format_ == "json":
        at = last_applied_at(snapshot)
        data = {"store": url, "version": snapshot.version, "seal": snapshot.seal,
                "applied_commit": snapshot.state.applied_commit,
                "applied_at": at.isoformat() if at else None, "now": now.isoformat(),
                "drift_note": note or None, "flags": [_row_json_or_error(row, now) for row in found]}
        echo(json_text(data, indent=2, ensure_ascii=False))
        return 0
    echo("\n".join(header(url, snapshot)))
    if note:
        echo(f"note: {note}")
    if found:
        echo(text(found, now))
    else:
        echo("the store serves no flags")
    return 0
