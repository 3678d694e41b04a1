"""The end of `apply` and `advance` for FeatureFlag manifests (`store.manifests`, docs/manifests.md).

`FeatureFlagStore.settle` publishes what still differs and says what it found. A manifest changed outside
gitops-flags is an attempt to serve what no PR approved, so it is raised as the sealed store's refusal is
(commands/store.py): an `::error` annotation, the job summary, and the policy's webhook, besides exit 1.
Unlike a refused store it does not stop the run: the store verified, and the approved manifest is
already written back.
"""

from __future__ import annotations

from .. import actions_env, delivery, render
from ..inert import echo, echo_command
from ..problems import GitopsFlagsError
from ..store import Store
from ..store.featureflags import FeatureFlagStore
from .store import Notice


def finish(store: Store, *, dry_run: bool, notice: Notice) -> int:
    """Settle the manifests, print what happened (inert: flag keys of a hand edit are repository
    content), raise the alarm on drift. 1 if anything is wrong."""
    if not isinstance(store, FeatureFlagStore):
        return 0
    settled = store.settle(dry_run=dry_run)
    for problem in settled.problems:
        echo(f"error: {problem}", err=True)
    for note in settled.notes:
        echo(f"note: {note}")
    drift = [f.text() for f in store.findings or [] if f.verdict == "drift"]
    if drift:
        alert(notice, drift, restored=not dry_run)
    return 1 if settled.problems else 0


def alert(notice: Notice, drift: list[str], *, restored: bool) -> None:
    text = render.plain("; ".join(drift), 1000)
    done = "the approved manifests were written back" if restored else "dry run: nothing was written back"
    what = "FeatureFlag manifests changed outside gitops-flags"
    headline = f"gitops-flags {notice.command}: {what} ({done}): {text}"
    if notice.env.in_actions:
        echo_command(f"::error title=gitops-flags {notice.command}::{_escape_command(headline)}")
    actions_env.append_summary(notice.env.summary_path, "\n".join([
        "", f"## gitops-flags {notice.command}: FeatureFlag manifests changed outside gitops-flags", "",
        "> [!CAUTION]", *(f"> {render.escape_md(line, 500)}" for line in drift[:10]), "",
        f"{done[0].upper()}{done[1:]}; the store's audit log records it. See docs/manifests.md, 'Drift'.", "",
    ]))
    url = notice.environ.get(notice.webhook_env) if notice.webhook_env else None
    if not url:
        return
    run_url = notice.env.run_url()
    payload = {
        "text": _slack(headline + (f"\n{run_url}" if run_url else "")),
        "gitops_flags": {"event": "manifest_drift", "command": notice.command, "restored": restored,
                         "repository": notice.env.repository, "run_url": run_url, "manifests": drift[:10]},
    }
    try:
        delivery.send_webhook(url, payload)
    except (GitopsFlagsError, OSError) as exc:
        echo(f"warning: the webhook could not be told: {exc}", err=True)


def _escape_command(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _slack(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
