"""`gitops-flags store reseal | verify`, and the seal guard `apply`, `advance` and `status` read through.

The guard (`checked_read`) reads the store, and:
- when its seal fails (or its manifest, or its stored version): says so on stderr, as a workflow `::error`,
  in the job summary and to the policy's webhook, then raises `StoreRefused` (exit 1). Nothing is built on
  such a store, so the outbox (which lives in it) cannot carry this notification: it is sent directly.
- when it is not sealed (no key) or cannot be checked (sealed, no key): prints the warning saying what the
  seal adds, once per run.

`store reseal` is the way to accept an intended hand edit: it needs the key, checks that the files still
parse, and records who re-sealed it, and why, in the audit log.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, NoReturn

import click

from .. import actions_env, delivery, notify, render
from ..actions_env import ActionsEnv
from ..inert import echo, echo_command
from ..model import Policy
from ..problems import GitopsFlagsError
from ..store import Store, StoreCorrupt, StoreError, StoreSnapshot
from ..store.base import Repaired
from ..store.seal import (
    KEY_ENV,
    UNSEALED_WARNING,
    UNVERIFIED_WARNING,
    SealKey,
    StoreTampered,
    audit_record,
    key_from_env,
    refuse_unkeyed_write,
)
from .clock import parse_now
from .options import directory_option

TOKEN_ENV = "GITOPS_FLAGS_STORE_TOKEN"


class StoreRefused(GitopsFlagsError):
    """The store failed its integrity check: the run stops with exit code 1 (the CLI reads `exit_code`).
    `seal` says how, for `status --format json`: `tampered` (the seal does not verify) or `corrupt`
    (damaged: a manifest, version or file that does not check out)."""

    exit_code = 1

    def __init__(self, message: str, seal: Literal["tampered", "corrupt"] = "corrupt") -> None:
        super().__init__(message)
        self.seal = seal
        self.problem = message.partition("\n")[0]


@dataclass(frozen=True)
class Notice:
    """Who to tell when the store is refused."""

    command: str
    env: ActionsEnv
    environ: Mapping[str, str]
    webhook_env: str | None = None
    writes: bool = False  # the run will write the store: a sealed store it cannot check stops it at once
    # Posts a comment on the PR the run is for (apply: the PR that merged the head), returning "PR #n",
    # or None when there is none; set by the command (commands/apply.py).
    pull_comment: Callable[[str], str | None] | None = None

    @classmethod
    def of(cls, command: str, env: ActionsEnv, environ: Mapping[str, str], policy: Policy | None,
           *, writes: bool = False) -> Notice:
        return cls(command, env, environ, policy.options.webhook_env if policy is not None else None, writes)


def checked_read(store: Store, notice: Notice, *, warn: bool = True) -> StoreSnapshot:
    """`store.read()`, refusing a store that fails its checks and warning about one that is not sealed."""
    try:
        snapshot = store.read()
    except StoreCorrupt as exc:
        refuse(store.where, exc, notice)
    if notice.writes:
        refuse_unkeyed_write(snapshot.seal, store.where)  # before deciding anything on unchecked content
    if warn:
        warn_seal(snapshot, store.where)
    return snapshot


def warn_seal(snapshot: StoreSnapshot, where: str) -> None:
    """With a key, an unsealed store that is not empty never gets here (it is refused)."""
    if snapshot.seal == "unsealed" and not _key_set():
        echo(UNSEALED_WARNING.format(where=where), err=True)
    elif snapshot.seal == "unverified":
        echo(UNVERIFIED_WARNING.format(where=where), err=True)


def refuse(where: str, problem: StoreCorrupt, notice: Notice) -> NoReturn:
    """Tell everyone who can act that the store was refused, then stop the run (exit 1)."""
    text = render.plain(str(problem), 1000)
    headline = f"gitops-flags {notice.command}: the flag store was NOT used: {text}"
    if notice.env.in_actions:
        echo_command(f"::error title=gitops-flags {notice.command}::{_escape_command(headline)}")
    actions_env.append_summary(notice.env.summary_path, "\n".join([
        f"## gitops-flags {notice.command}: flag store refused", "",
        "> [!CAUTION]", f"> {render.escape_md(text, 1000)}", "",
        "Nothing was applied or advanced. See docs/store.md, 'The seal' (`apply --repair`, `store reseal`).",
        "",
    ]))
    url = notice.environ.get(notice.webhook_env) if notice.webhook_env else None
    if url:
        payload = {
            "text": _slack(headline + (f"\n{notice.env.run_url()}" if notice.env.run_url() else "")),
            "gitops_flags": {"event": "store_refused", "command": notice.command, "store": where,
                             "repository": notice.env.repository, "run_url": notice.env.run_url(),
                             "problem": text},
        }
        try:
            delivery.send_webhook(url, payload)
        except (GitopsFlagsError, OSError) as exc:
            echo(f"warning: the webhook could not be told: {exc}", err=True)
    if notice.pull_comment is not None:
        try:
            told = notice.pull_comment(notify.refused_comment(notice.command, text, notice.env.run_url()))
        except (GitopsFlagsError, OSError) as exc:
            echo(f"warning: the pull request could not be told: {render.plain(str(exc), 300)}", err=True)
        else:
            if told:
                echo(f"note: {told} was told that its merge was not applied")
    raise StoreRefused(f"{text}\nThe store was not used; nothing was written.",
                       "tampered" if isinstance(problem, StoreTampered) else "corrupt")


def repair(store: Store, notice: Notice, now: datetime) -> Repaired:
    """`apply --repair`: put back the last sealed version, audited, before reconciling."""
    method = getattr(store, "repair", None)
    if method is None:  # pragma: no cover - every backend has one
        raise StoreError(f"{store.where} cannot be repaired")
    actor = notice.environ.get("GITHUB_ACTOR", "")
    record = audit_record("store_repaired", now, store.where, "restored the last sealed version", actor=actor)
    try:
        repaired: Repaired = method([record])
    except StoreCorrupt as exc:
        refuse(store.where, exc, notice)
    except OSError as exc:
        raise StoreError(f"cannot repair {store.where}: {exc.strerror or exc}") from None
    if repaired.restored_from:
        echo(f"repaired {store.where}: {render.plain(repaired.problem, 600)}")
        echo(f"restored {repaired.restored_from}; now at version {(repaired.version or '')[:12]}")
    else:
        echo(f"{store.where} verifies: nothing to repair")
    return repaired


def _key_set() -> bool:
    return bool(os.environ.get(KEY_ENV, "").strip())


def _escape_command(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- the `store` command group ----------------------------------------------------------------------------


@click.group(name="store")
def command() -> None:
    """Check the flag store's seal, or re-seal it after an intended hand edit."""


_STORE = click.option("--store", "store_arg", metavar="URL", envvar="GITOPS_FLAGS_STORE",
                      help="file:PATH, github-branch:[OWNER/NAME:]BRANCH or litestar-flags:URL "
                           "(default: the policy's store).")
_REPO = directory_option("The flag repository whose policy names the store.", default=".", exists=True)


def _open(store_arg: str | None, repo: Path) -> tuple[Store, ActionsEnv]:
    from .. import validate
    from ..tree import DirTree
    from . import apply

    env = ActionsEnv.from_environ(os.environ)
    url = store_arg
    if url is None:
        policy, _ = validate.read_policy(DirTree(repo))
        url = apply.default_store_url(policy, repo.resolve(), in_actions=env.in_actions)
    return apply.store_opener(url, env), env


@command.command(name="reseal")
@_STORE
@_REPO
@click.option("--reason", required=True, help="Why the store was edited by hand (kept in the audit log).")
@click.option("--now", "now_arg", metavar="ISO-8601", hidden=True, help="The current time (tests).")
def reseal(store_arg: str | None, repo: Path, reason: str, now_arg: str | None) -> int:
    """Accept the store's files as they are now, after an intended hand edit, and seal them.

    Needs the seal key (GITOPS_FLAGS_STORE_KEY) and checks that the state and every flagd document still
    parse. The re-seal is recorded in the audit log with --reason and who ran it. A hand edit bypasses
    approval: prefer a PR to the flag files and a normal `apply`.
    """
    key = _require_key("re-sealing")
    store, _ = _open(store_arg, repo)
    method = getattr(store, "reseal", None)
    if method is None:  # pragma: no cover - every backend has one
        raise StoreError(f"{store.where} cannot be re-sealed")
    now = parse_now(now_arg) or datetime.now(UTC).replace(microsecond=0)
    actor = os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or ""
    record = audit_record("store_resealed", now, store.where, "hand edit accepted and re-sealed",
                          reason=reason, actor=actor)
    try:
        version = str(method([record]))
    except OSError as exc:  # a read-only directory, a full disk: a message, not a traceback
        raise StoreError(f"cannot re-seal {store.where}: {exc.strerror or exc}") from None
    echo(f"re-sealed {store.where} with key {key.key_id}; now at version {version[:12]}")
    return 0


@command.command(name="verify")
@_STORE
@_REPO
def verify(store_arg: str | None, repo: Path) -> int:
    """Check the store's manifest and seal (and its audit log). Exit 0 verified, 1 refused or unsealed."""
    _require_key("verifying the seal")
    store, env = _open(store_arg, repo)
    notice = Notice("store verify", env, os.environ)
    snapshot = checked_read(store, notice)
    try:
        records = store.read_audit()
    except StoreCorrupt as exc:
        refuse(store.where, exc, notice)
    if snapshot.version is None:
        echo(f"{store.where} is empty: nothing to verify")
        return 0
    if snapshot.seal != "verified":
        echo(f"{store.where} is not sealed; adopt it with `gitops-flags store reseal`", err=True)
        return 1
    echo(f"{store.where} verifies: version {snapshot.version[:12]}, {len(records)} audit records")
    return 0


def _require_key(what: str) -> SealKey:
    key = key_from_env(os.environ)
    if key is None:
        raise StoreError(f"{what} needs the seal key: set {KEY_ENV} (in Actions, from the `flag-store` "
                         "environment's secret)")
    return key
