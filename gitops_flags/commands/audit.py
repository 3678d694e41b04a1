"""`gitops-flags audit`: read the store's audit log, optionally for one flag and one environment.

Records come from `apply` (one per applied, warned or blocked change; see docs/apply.md) and from
`advance` (rollout events). Text output is one line per record, oldest first; JSON output is the records
themselves, as a list. A store that fails its seal (or is damaged) is refused, with exit 1, as `status`
refuses it: its log is not shown as if it could be trusted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from .. import render, validate
from ..actions_env import ActionsEnv
from ..inert import echo, json_text
from ..store import StoreCorrupt
from ..tree import DirTree
from . import apply
from .options import directory_option
from .store import Notice, checked_read, refuse


@click.command(name="audit")
@click.argument("key", required=False)
@click.option("--env", "environment", metavar="ENV", help="Only records of this environment.")
@click.option("--store", "store_arg", metavar="URL", envvar="GITOPS_FLAGS_STORE",
              help="file:PATH, github-branch:BRANCH or litestar-flags:URL (default: the policy's store).")
@directory_option("The flag repository whose policy names the store.", default=".", exists=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="Only the last N matching records.")
def command(key: str | None, environment: str | None, store_arg: str | None, repo: Path, fmt: str,
            limit: int | None) -> int:
    """Show the audit log of applied changes."""
    env = ActionsEnv.from_environ(os.environ)
    url = store_arg
    if url is None:
        policy, _ = validate.read_policy(DirTree(repo))
        url = apply.default_store_url(policy, repo.resolve(), in_actions=env.in_actions)
    store = apply.store_opener(url, env)
    # A log that fails its seal is not shown as if it could be trusted. The seal covers the log's head, so
    # the store is read (and checked) first, on every backend.
    notice = Notice("audit", env, os.environ)
    checked_read(store, notice, warn=False)
    try:
        log = store.read_audit()
    except StoreCorrupt as exc:
        refuse(store.where, exc, notice)
    records = select(log, key, environment)
    if limit is not None:
        records = records[-limit:]
    if fmt == "json":
        echo(json_text(records, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        for record in records:
            echo(text_line(record))
        if not records:
            echo("no audit records" + (" match" if key or environment else ""), err=True)
    return 0


def select(
    records: Sequence[Mapping[str, Any]], key: str | None, environment: str | None
) -> list[dict[str, Any]]:
    """Records about `key` (a flag key, schema name or governance path) in `environment`."""
    out: list[dict[str, Any]] = []
    for record in records:
        if key is not None and key not in (record.get("key"), record.get("flag")):
            continue
        if environment is not None and record.get("environment") != environment:
            continue
        out.append(dict(record))
    return out


def text_line(record: Mapping[str, Any]) -> str:
    """`time  outcome  key@env  type  summary  (PR #n by author, commit, approvers)  — reason`."""
    key = record.get("key") or record.get("flag") or "?"
    env = record.get("environment")
    what = f"{key}@{env}" if env else str(key)
    outcome = record.get("outcome") or record.get("event") or "?"
    parts = [str(record.get("time") or "?"), f"{outcome:<7}", what]
    for name in ("change_type", "summary"):
        if record.get(name):
            parts.append(str(record[name]))
    origin: list[str] = []
    if record.get("pr"):
        origin.append(f"PR #{record['pr']}" + (f" by {record['author']}" if record.get("author") else ""))
    if record.get("merge_commit"):
        origin.append(str(record["merge_commit"])[:7])
    approvers = record.get("approvers")
    if isinstance(approvers, Mapping) and approvers:
        origin.append("approved: " + "; ".join(f"{s}={','.join(map(str, w))}" for s, w in approvers.items()))
    elif record.get("approval") in ("unverified", "baseline", "missing"):
        origin.append(f"approval {record['approval']}")
    if origin:
        parts.append(f"({', '.join(origin)})")
    if record.get("reason") and outcome != "applied":
        parts.append(f"— {record['reason']}")
    return render.plain("  ".join(parts))
