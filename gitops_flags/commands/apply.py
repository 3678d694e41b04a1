"""`gitops-flags apply`: reconcile the flag store to the head of the default branch.

The shell around `reconcile`: it walks first-parent commits with git, reads trees, asks GitHub which PR
merged each commit (through a `MergedPullSource`), writes the store with compare-and-swap, and reports
(terminal, job summary, PR comments, webhook). The decisions are made in `reconcile`; docs/apply.md
describes the whole.

One store write per commit: the units of a merge land together (flagd never serves half a PR), and a
github-branch store pays one commit per merge rather than one per change. A write that fails records its
units as failed and stops; the next run resumes at them.

Notifications go through the store's outbox (`notify.flush`): each write carries the PR comments and the
webhook message it owes, and they are delivered, then removed, after the walk. A run that dies in
between leaves them for the next run, which sends them.

Exit codes: 0 everything applied (or nothing to do); 1 a change was blocked or a write failed; 2 the run
could not start (no policy, unreadable store, rewritten history, no GitHub access to verify approvals).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import click

from .. import actions_env, approvals, changes, git, notify, reconcile, validate
from ..actions_env import ActionsEnv
from ..inert import echo, echo_command
from ..model import POLICY_PATH, Policy, StoreConfig
from ..problems import GitopsFlagsError
from ..reconcile import MergedPull, MergedPullSource, Unit, UnitResult
from ..result import Evaluation
from ..store import (
    Store,
    StoreError,
    StoreSnapshot,
    Update,
    branch_location,
    featureflags,
    open_store,
    store_url,
    update,
)
from ..store.seal import key_from_env
from ..store.state import OutboxEntry, StoreState, unit_id
from ..tree import DictTree, Tree
from . import location
from .clock import parse_now
from .manifests import finish as finish_manifests
from .options import directory_option
from .store import TOKEN_ENV, Notice, checked_read
from .store import repair as repair_store

EMPTY: Tree = DictTree({})
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
    return notify.GitHubCommenter(client)


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


# --- git: the first-parent walk --------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One diff to apply: from `base` (None: nothing) to `commit`."""

    commit: str
    base: str | None
    baseline: bool = False  # before the policy existed: every file compared, no approvals to check


def _git(repo: Path, *args: str, ok: tuple[int, ...] = (0,)) -> tuple[int, str]:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False)
    if done.returncode not in ok:
        raise GitopsFlagsError(f"git {args[0]} failed: {done.stderr.strip().removeprefix('fatal: ')}")
    return done.returncode, done.stdout


def is_ancestor(repo: Path, a: str, b: str) -> bool:
    code, _ = _git(repo, "merge-base", "--is-ancestor", a, b, ok=(0, 1))
    return code == 0


def first_parent_chain(
    repo: Path, base: str | None, head: str, path: str | None = None
) -> list[tuple[str, str | None]]:
    """(commit, first parent) after `base` up to `head` along first parents, oldest first; with `path`,
    only the commits that change it (compared with their first parent)."""
    args = ["rev-list", "--first-parent", "--reverse", "--parents", head]
    if base:
        args.append(f"^{base}")
    if path:
        args += ["--", path]
    _, out = _git(repo, *args)
    chain: list[tuple[str, str | None]] = []
    for row in out.splitlines():
        shas = row.split()
        if shas:
            chain.append((shas[0], shas[1] if len(shas) > 1 else None))
    return chain


def plan_walk(
    repo: Path, applied: str | None, head: str, baseline: str | None
) -> tuple[list[Step], list[str]]:
    """The steps from the store's applied commit to head, and notes for the report."""
    notes: list[str] = []
    if baseline is not None:
        if applied is not None:
            raise GitopsFlagsError(f"--baseline only seeds an empty store; this one is at {applied[:12]}")
        start = git.resolve(repo, baseline)
        if not is_ancestor(repo, start, head):
            raise GitopsFlagsError(f"--baseline {baseline} is not an ancestor of {head[:12]}")
        notes.append(f"baseline: the flags at {start[:12]} are applied as they are (--baseline)")
        return [Step(start, None, baseline=True), *_governed(repo, start, head)], notes
    if applied is not None:
        try:
            applied = git.resolve(repo, applied)
        except GitopsFlagsError:
            raise GitopsFlagsError(
                f"the store was last applied at {applied[:12]}, which this clone does not have: fetch "
                "the full history (actions/checkout with fetch-depth: 0)"
            ) from None
        if applied == head:
            return [], notes
        if is_ancestor(repo, head, applied):
            notes.append(f"the store is at {applied[:12]}, later than {head[:12]}: nothing to do")
            return [], notes
        if not is_ancestor(repo, applied, head):
            raise GitopsFlagsError(
                f"the store was last applied at {applied[:12]}, which is not in the history of {head[:12]} "
                "(was the default branch rewritten?); see docs/apply.md, 'Rewritten history'"
            )
    chain = first_parent_chain(repo, applied, head)
    if chain and chain[0][1] != applied:
        raise GitopsFlagsError(
            f"the store's commit {applied[:12] if applied else '(none)'} is not on the first-parent history "
            f"of {head[:12]}; see docs/apply.md, 'Rewritten history'"
        )
    started = applied is not None and _has_policy(repo, applied)
    if started:
        return _steps(chain), notes
    # Before the policy existed nothing was approved: the flags at the commit that adopted it are the
    # baseline, applied as they are. Commits after it are governed.
    adoption = next(
        (sha for sha, _ in first_parent_chain(repo, applied, head, POLICY_PATH)
         if _has_policy(repo, sha)),
        head,
    )
    notes.append(f"baseline: the flags at {adoption[:12]} (the policy's adoption) are applied as they are")
    index = next(i for i, (sha, _) in enumerate(chain) if sha == adoption)
    return [Step(adoption, applied, baseline=True), *_steps(chain[index + 1 :])], notes


def _has_policy(repo: Path, sha: str) -> bool:
    with git.GitTree(repo, sha) as tree:
        return tree.read(POLICY_PATH) is not None


def _governed(repo: Path, base: str, head: str) -> list[Step]:
    return _steps(first_parent_chain(repo, base, head))


def _steps(chain: Sequence[tuple[str, str | None]]) -> list[Step]:
    return [Step(sha, parent) for sha, parent in chain]


def changed_paths(repo: Path, base: str, commit: str) -> list[str]:
    paths: dict[str, None] = {}
    for fc in git.changed_files(repo, base, commit):
        paths[fc.path] = None
        if fc.old_path:
            paths[fc.old_path] = None
    return list(paths)


class _Trees:
    """Git trees by commit for one landed range, each opened once (each holds a `git cat-file`)."""

    def __init__(self, repo: Path) -> None:
        self.repo = repo
        self._open: dict[str, git.GitTree] = {}

    def at(self, sha: str) -> git.GitTree:
        if sha not in self._open:
            self._open[sha] = git.GitTree(self.repo, sha)
        return self._open[sha]

    def close(self) -> None:
        for tree in self._open.values():
            tree.close()


def _same_rules(trees: _Trees, a: str, b: str) -> bool:
    """Whether two commits hold the same policy and CODEOWNERS (a commit not in the clone: unknown, so no)."""
    try:
        return approvals.same_rules(trees.at(a), trees.at(b))
    except GitopsFlagsError:
        return False


@dataclass(frozen=True)
class _View:
    era: reconcile.Era
    policy: Policy
    parent_policy: Policy | None
    diff: changes.Diff
    todo: list[changes.Change]


# --- the run ---------------------------------------------------------------------------------------


@dataclass
class Report:
    results: list[UnitResult] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run(options: Options, env: ActionsEnv, *, source_factory: SourceFactory,
        notifier_factory: NotifierFactory, store_opener: StoreOpener) -> int:
    repo = options.repo.resolve()
    head = git.resolve(repo, options.rev)
    with git.GitTree(repo, head) as head_tree:
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
    if options.repair:
        if options.dry_run:
            raise GitopsFlagsError("--repair writes the store; it cannot be combined with --dry-run")
        repair_store(store, notice, now)
    snapshot = checked_read(store, notice)  # a store that fails its seal stops the run here (exit 1)
    steps, notes = plan_walk(repo, snapshot.state.applied_commit, head, options.baseline)
    report = Report(notes=notes)

    source: MergedPullSource | None = None
    if options.verify and any(not s.baseline for s in steps):
        source = source_factory(env, repo)
        if source is None:
            raise GitopsFlagsError(
                "re-checking approvals needs GitHub: set GITHUB_TOKEN and GITHUB_REPOSITORY (Actions sets "
                "them), or pass --no-verify-approvals for local use"
            )

    _header(options, store.where, snapshot, head, len(steps))
    channels = _channels(options, env, head_policy, notifier_factory)
    walker = _Walker(repo, store, snapshot, now, options, source, head_policy, [s.commit for s in steps],
                     _RunOutbox(channels.outbound, store.where, head, now))
    try:
        index = 0
        while index < len(steps):
            taken = walker.step(steps, index, report)
            if not taken:
                break
            index += taken
        else:
            walker.finish(report)
    finally:
        close = getattr(source, "close", None)  # the GitHub source holds git processes
        if close is not None:
            close()

    code = _report(options, env, store, head, report, walker, channels)
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


@dataclass(frozen=True)
class _RunOutbox:
    """Builds this run's outbox entries (pure given the run's results so far)."""

    outbound: notify.Outbound
    where: str
    head: str
    now: datetime

    def for_write(self, report: Report, new: Sequence[UnitResult] = ()) -> list[OutboxEntry]:
        """What a write adds: the webhook message so far, and the comments of the PRs `new` touches
        (with every result of this run for each, so a PR merged as several commits gets one comment)."""
        prs = {r.unit.pull.number for r in new if r.unit.pull is not None}
        return notify.apply_entries([*report.results, *new], self.outbound, store=self.where, head=self.head,
                                    now=self.now, failures=report.failures, prs=prs)

    def complete(self, report: Report) -> list[OutboxEntry]:
        """Every notification of the run, as it ended (including failures the store could not record)."""
        return notify.apply_entries(report.results, self.outbound, store=self.where, head=self.head,
                                    now=self.now, failures=report.failures)


class _Walker:
    """Applies the steps in order, one store write per commit, remembering what it wrote."""

    def __init__(self, repo: Path, store: Store, snapshot: StoreSnapshot, now: datetime, options: Options,
                 source: MergedPullSource | None, head_policy: Policy | None, order: list[str],
                 outbox: _RunOutbox) -> None:
        self.repo, self.store, self.snapshot, self.now = repo, store, snapshot, now
        self.options, self.source, self.head_policy = options, source, head_policy
        start = snapshot.state.applied_commit
        self.order = ([start] if start else []) + order
        self.clean: str | None = None  # the last commit walked whose units are all done
        self.distrust_policy = False  # a policy change was not approved: its on_unapproved is not trusted
        self.outbox = outbox
        self.latest: StoreState = snapshot.state  # the state last read or written: its outbox is pending
        self.recorded: set[str] = set()  # ids of the outbox entries this run wrote to the store

    def _wrote(self, state: StoreState) -> None:
        self.latest = state
        self.recorded.update(e.id for e in state.outbox)

    def step(self, steps: Sequence[Step], index: int, report: Report) -> int:
        """Apply the landed range that starts at `steps[index]`; the number of steps it took (0: stop)."""
        trees = _Trees(self.repo)
        try:
            return self._land(steps, index, trees, report)
        finally:  # each tree holds a `git cat-file` process
            trees.close()

    def _view(self, step: Step, commit: str, trees: _Trees) -> _View:
        """The diff from the step's base to `commit` (the end of its landed range), and its era."""
        tree = trees.at(commit)
        parent_policy: Policy | None = None
        if step.baseline:
            era: reconcile.Era = "baseline"
            policy, _ = validate.read_policy(tree)
            changed: list[str] | None = None
            base_tree = trees.at(step.base) if step.base else EMPTY
        else:
            assert step.base is not None
            base_tree = trees.at(step.base)
            parent_policy, _ = validate.read_policy(base_tree)
            era = reconcile.era_for(parent_policy is not None, governance_started=True)
            policy = parent_policy or validate.read_policy(tree)[0]
            changed = changed_paths(self.repo, step.base, commit)
        policy = policy or self.head_policy
        if policy is None:
            raise GitopsFlagsError(
                f"no usable policy ({POLICY_PATH}) at {commit[:12]} or at the head: fix the policy "
                "first (`gitops-flags validate`)"
            )
        diff = changes.diff(base_tree, tree, policy, changed=changed)
        state = self.snapshot.state
        todo = [c for c in diff.changes if not reconcile.done(state, unit_id(commit, c.ident()))]
        return _View(era, policy, parent_policy, diff, todo)

    def _land(self, steps: Sequence[Step], index: int, trees: _Trees, report: Report) -> int:
        first = steps[index]
        view = self._view(first, first.commit, trees)
        if not view.todo:
            self.clean = first.commit
            return 1
        group = [first]
        pull: MergedPull | None = None
        evaluation = None
        differs: set[str] = set()
        extra: list[Unit] = []
        if self.options.verify and view.era == "governed":
            assert self.source is not None and first.base is not None
            try:
                pull = self.source.pull_for_commit(first.commit)
                if pull is not None:
                    group = self._range(steps, index, pull)
                    if len(group) > 1:  # a rebase merge: judge and serve the state at the range's end
                        end = group[-1].commit
                        extra = self._intermediates(group, pull, trees)
                        view = self._view(first, end, trees)
                    evaluation = self._evaluate(pull, first.base, trees)
                    differs = self._differs(pull, view.diff.changes, trees.at(group[-1].commit))
            except (GitopsFlagsError, OSError) as exc:
                error = f"looking up the PR of {first.commit[:12]}: {exc}"
                self._fail(first.commit, view.todo, error, report)
                return 0
        on_unapproved: reconcile.OnUnapproved = "block"
        if view.parent_policy is not None and not self.distrust_policy:
            on_unapproved = view.parent_policy.options.on_unapproved
        end = group[-1].commit
        units = reconcile.plan_units(
            end, view.diff, trees.at(end), era=view.era, verify=self.options.verify, pull=pull,
            evaluation=evaluation, on_unapproved=on_unapproved, differs=differs,
        )  # fmt: skip
        return len(group) if self._write(end, [*extra, *units], report) else 0

    def _range(self, steps: Sequence[Step], index: int, pull: MergedPull) -> list[Step]:
        """The steps of the PR's landed range from `steps[index]`: the commits GitHub associates with the
        same merged PR, up to its merge commit (a rebase merge replays the PR's commits one by one). A
        commit of another PR, or a direct push, ends the range: it is never judged as part of this one."""
        group = [steps[index]]
        later = [s.commit for s in steps[index + 1 :]]
        if pull.merge_commit in (None, steps[index].commit) or pull.merge_commit not in later:
            return group
        assert self.source is not None
        for step in steps[index + 1 :]:
            found = self.source.pull_for_commit(step.commit)
            if step.baseline or found is None or found.number != pull.number:
                break
            group.append(step)
            if step.commit == pull.merge_commit:
                break
        return group

    def _intermediates(self, group: Sequence[Step], pull: MergedPull, trees: _Trees) -> list[Unit]:
        """The states the range's earlier commits introduced that its end does not keep: recorded, never
        served."""
        end = group[-1].commit
        units: list[Unit] = []
        for step in group[:-1]:
            own = self._view(step, step.commit, trees)
            if not own.todo:
                continue
            later = changes.diff(trees.at(step.commit), trees.at(end), own.policy,
                                 changed=changed_paths(self.repo, step.commit, end))
            undone = {c.ident() for c in later.changes}
            kept = [c for c in own.todo if c.ident() in undone]
            units += reconcile.intermediate_units(step.commit, kept, end, pull)
        return units

    def _evaluate(self, pull: MergedPull, parent: str, trees: _Trees) -> Evaluation:
        """The PR's approvals under its base policy and, when the rules differ, under the policy of the
        commit it landed on: a policy tightened after the PR was opened binds it too."""
        assert self.source is not None
        evaluation = self.source.evaluate(pull)
        if pull.base_sha is None or _same_rules(trees, pull.base_sha, parent):
            return evaluation
        landed = self.source.evaluate(pull, policy_at=parent)
        return approvals.combine(
            evaluation, f"under PR #{pull.number}'s base policy (at {pull.base_sha[:12]})",
            landed, f"under the policy where it landed (at {parent[:12]}, the landed range's first parent)",
        )

    def _differs(self, pull: MergedPull, items: Sequence[changes.Change], end: Tree) -> set[str]:
        """The files of `items` whose whole content as landed is not the approved head's."""
        assert self.source is not None
        paths = {path for change in items for path in approvals.change_files(change)}
        return {p for p in sorted(paths) if end.read(p) != self.source.read(pull.head_sha, p)}

    def _write(self, commit: str, units: Sequence[Unit], report: Report) -> bool:
        holder: list[tuple[reconcile.Applied, Update]] = []

        def decide(snapshot: StoreSnapshot) -> Update | None:
            holder.clear()
            applied = reconcile.apply_units(snapshot, units, self.now, advance_to=commit, order=self.order,
                                            where=self.store.where)
            if applied is None:
                return None
            # The notifications this commit owes travel in the same write as its units.
            wanted = applied.update
            if not self.options.dry_run:
                entries = self.outbox.for_write(report, applied.results)
                wanted = replace(wanted, state=wanted.state.with_outbox(entries))
            holder.append((applied, wanted))
            return wanted

        try:
            if self.options.dry_run:
                update_ = decide(self.snapshot)
                if update_ is not None:
                    self.snapshot = _snapshot(update_, self.snapshot.version)
            else:
                version = update(self.store, decide)
                if holder:
                    self.snapshot = _snapshot(holder[0][1], version)
                    self._wrote(holder[0][1].state)
        except (GitopsFlagsError, OSError) as exc:
            changes_ = [u.change for u in units]
            return self._fail(commit, changes_, f"writing the store for {commit[:12]}: {exc}", report)
        results = holder[0][0].results if holder else ()
        report.results.extend(results)
        _echo_results(results)
        if reconcile.blocks_policy(results):
            self.distrust_policy = True
            report.notes.append(
                f"a change to {POLICY_PATH} at {commit[:12]} was not approved: later commits in this run are "
                "judged with on_unapproved: block"
            )
        self.clean = commit
        return True

    def _fail(self, commit: str, todo: Sequence[changes.Change], error: str, report: Report) -> bool:
        report.failures.append(f"{error} — the next run resumes here")
        echo(f"error: {error}", err=True)
        if self.options.dry_run:
            return False

        holder: list[StoreState] = []

        def decide(snapshot: StoreSnapshot) -> Update | None:
            state = reconcile.failed(snapshot.state, commit, todo, self.now, error)
            state = _advanced(state, self.clean, self.order)
            state = state.with_outbox(self.outbox.for_write(report))  # the webhook tells of the failure
            holder[:] = [state]
            return Update(state, snapshot.documents, (), f"gitops-flags apply {commit[:12]}: failed")

        try:
            if update(self.store, decide) is not None:
                self._wrote(holder[0])
        except (GitopsFlagsError, OSError) as exc:
            echo(f"error: the failure could not be recorded in the store either: {exc}", err=True)
        return False

    def finish(self, report: Report) -> None:
        """Move applied_commit over trailing commits that had nothing to apply."""
        if self.clean is None or self.options.dry_run:
            return
        target = self.clean

        holder: list[Update] = []

        def decide(snapshot: StoreSnapshot) -> Update | None:
            wanted = reconcile.advance_only(snapshot, target, self.order)
            holder[:] = [wanted] if wanted is not None else []
            return wanted

        try:
            if update(self.store, decide) is not None:
                self._wrote(holder[0].state)
        except (GitopsFlagsError, OSError) as exc:
            report.failures.append(f"recording the applied commit {target[:12]}: {exc}")
            echo(f"error: recording the applied commit {target[:12]}: {exc}", err=True)


def _snapshot(wrote: Update, version: str | None) -> StoreSnapshot:
    documents = {env: dict(doc) for env, doc in wrote.documents.items()}
    return StoreSnapshot(wrote.state, documents, version)


def _advanced(state: StoreState, to: str | None, order: Sequence[str]) -> StoreState:
    if to is not None and reconcile.position(to, order) > reconcile.position(state.applied_commit, order):
        return state.with_applied_commit(to)
    return state


# --- judging without a store: the merge queue's check ----------------------------------------------


class _Nowhere:
    """The store of a dry walk that starts at a given commit: only its name is ever read."""

    where = "nowhere (judged, not applied)"


def judge_commits(repo: Path, base: str, head: str, source: MergedPullSource, now: datetime) -> Report:
    """What apply would decide for the first-parent commits base..head, written nowhere: the same landed
    ranges, whole-file comparison and two policies. `check` runs it on a merge queue's group."""
    steps = _steps(first_parent_chain(repo, base, head))
    snapshot = StoreSnapshot(StoreState().with_applied_commit(base), {}, None)
    with git.GitTree(repo, head) as tree:
        head_policy, _ = validate.read_policy(tree)
    outbox = _RunOutbox(notify.Outbound("merge-group"), _Nowhere.where, head, now)
    walker = _Walker(repo, cast(Store, _Nowhere()), snapshot, now, Options(repo=repo, dry_run=True), source,
                     head_policy, [s.commit for s in steps], outbox)
    report = Report()
    index = 0
    while index < len(steps):
        taken = walker.step(steps, index, report)
        if not taken:
            break
        index += taken
    return report


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


def _report(options: Options, env: ActionsEnv, store: Store, head: str, report: Report, walker: _Walker,
            channels: _Channels) -> int:
    results, where = report.results, store.where
    for note in report.notes:
        echo(f"note: {note}")
    if env.in_actions:
        for result in results:
            command_line = notify.workflow_command(result)
            if command_line:
                echo_command(command_line)
    outcomes = ("applied", "warned", "blocked", "skipped")
    counts = {o: sum(1 for r in results if r.outcome == o) for o in outcomes}
    verb = "would be" if options.dry_run else "were"
    skipped = f", {counts['skipped']} intermediate states never served" if counts["skipped"] else ""
    echo(f"{counts['applied']} applied, {counts['warned']} applied with a warning, "
               f"{counts['blocked']} blocked{skipped} ({verb} written to {where})")
    if report.failures:
        echo("stopped at a failure (above); the next run resumes there", err=True)
    undelivered: list[str] = []
    if options.dry_run:
        pending = notify.pending_note(walker.latest.outbox)
        if pending:
            echo(f"note: {pending}")
    else:
        undelivered = _deliver(store, report, walker, channels)
    summary = notify.job_summary(results, store=where, head=head, verified=options.verify,
                                 dry_run=options.dry_run, failures=report.failures, notes=report.notes,
                                 undelivered=undelivered)
    actions_env.append_summary(env.summary_path, summary)
    return 1 if report.failures or counts["blocked"] else 0


def _deliver(store: Store, report: Report, walker: _Walker, channels: _Channels) -> list[str]:
    """Send what the outbox holds (this run's entries, and any an earlier run left), then clear it.
    Failures are warnings: the store was written, and the entries wait for the next run."""
    if report.results or report.failures:
        if channels.notifier is None and any(r.unit.pull is not None for r in report.results):
            echo("note: no GitHub token and repository: the merged PRs get no comment")
        if channels.webhook_variable and not channels.webhook_url:
            echo(f"note: the webhook variable {channels.webhook_variable} (from the policy) is not "
                       "set: no webhook sent")
    own = {e.id: e for e in walker.outbox.complete(report)}
    stored = walker.latest.outbox
    stored_ids = {e.id for e in stored}
    pending = [own.get(e.id, e) for e in stored]
    # Not recorded (the store could not be written): sent all the same, once, as before the outbox.
    pending += [e for e in own.values() if e.id not in stored_ids and e.id not in walker.recorded]
    if not pending:
        return []
    flushed = notify.flush(store, pending, notifier=channels.notifier, webhook_url=channels.webhook_url,
                           now=walker.now, own=own.keys(), recorded=stored_ids)
    waiting = sum(1 for d in flushed.deliveries if d.status == "skipped")
    if waiting:
        echo(f"note: {waiting} earlier notification(s) wait in the store's outbox for a run with "
                   "a GitHub token or the webhook variable")
    for problem in flushed.problems:
        echo(f"warning: {problem}", err=True)
    return list(flushed.problems)
