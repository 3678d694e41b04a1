"""OpenFeature Operator `FeatureFlag` manifests beside any store: what Argo CD or Flux syncs to clusters.

`FeatureFlagStore` wraps a store (file, github-branch, litestar-flags) and implements the same Store
protocol. The wrapped store stays the one source of truth and the commit point: state, documents, audit
and seal are written there exactly as before. After each write, the manifests are published from the
documents just written (`featureflag.resource`), to a branch of a GitHub repository (this one or
another, e.g. `cluster-config`; one commit for all the files of a branch, with the github-branch store's
compare-and-swap) or to a directory (the targets are in `manifest_targets`).

The first read of a run compares every manifest in its target with the one the store's documents give
(`featureflag.verdict`). A manifest changed by something other than gitops-flags is drift: `settle`,
which apply and advance call at the end of a run, reports it (exit 1, an audit line in the store) and
writes the approved manifest back. A manifest gitops-flags sealed earlier (a run that stopped between
its store write and its publish) is only behind: it is brought up to date with a note.

A publish that fails after the store was written does not undo the store write (the store is the commit
point); the run reports it and the next run publishes. After publishing, the store is read again: if
another run wrote it meanwhile, its documents are published too, so the last publish always carries
the newest store version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from .. import featureflag
from ..actions_env import ActionsEnv
from ..featureflag import ManifestError, Placement, Verdict
from ..model import ManifestsConfig, Policy
from ..problems import GitopsFlagsError
from .base import ConflictError, Repaired, Store, StoreError, StoreSnapshot
from .manifest_targets import DirectoryTarget, GitHubTarget
from .seal import key_from_env
from .state import StoreState

if TYPE_CHECKING:
    from github.Repository import Repository

ATTEMPTS = 5
MESSAGE = "gitops-flags: FeatureFlag manifests for {environments}"


class Target(Protocol):
    """Where manifests are written. `read` returns a version token (None: nothing there yet) and each
    path's bytes (None: no such file); `write` raises ConflictError when the target moved."""

    where: str

    def read(self, paths: Sequence[str]) -> tuple[str | None, dict[str, bytes | None]]: ...

    def write(self, files: Mapping[str, bytes], expected: str | None, message: str) -> None: ...


@dataclass(frozen=True)
class Finding:
    placement: Placement
    target: str
    verdict: Verdict
    detail: str = ""

    def text(self) -> str:
        where = f"{self.target}:{self.placement.path}"
        if self.verdict == "drift":
            return (
                f"FeatureFlag manifest {where} ({self.placement.environment}) was changed outside "
                f"gitops-flags: {self.detail}"
            )
        if self.verdict == "stale":
            return f"FeatureFlag manifest {where} ({self.placement.environment}) was behind the store"
        return f"FeatureFlag manifest {where} ({self.placement.environment}) was not published yet"


@dataclass
class Settled:
    """What the end of a run found and did, for the report."""

    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # any of these makes the run exit 1


class FeatureFlagStore:
    """A Store (see base.Store) that also publishes `FeatureFlag` manifests of its documents."""

    def __init__(
        self,
        inner: Store,
        config: ManifestsConfig,
        environments: Sequence[str],
        targets: Mapping[tuple[str | None, str], Target],
        *,
        key: bytes | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.inner = inner
        self.where = inner.where
        self.config = config
        self.placements = featureflag.placements(config, environments)
        missing = sorted({p.target for p in self.placements} - set(targets), key=str)
        if missing:
            raise StoreError(f"no manifest target opened for {missing}")  # a caller's mistake
        self.targets = targets
        self.key = key
        self.clock = clock
        self.findings: list[Finding] | None = None  # set by the first read: the state before this run
        self.errors: list[str] = []
        self.published: list[str] = []
        # environment → (digest of its document, resource, bytes)
        self._cache: dict[str, tuple[str, dict[str, Any], bytes]] = {}

    # --- the Store protocol ------------------------------------------------------------------------

    def read(self) -> StoreSnapshot:
        snapshot = self.inner.read()
        if self.findings is None:
            try:
                self.findings = self.check(snapshot.documents)
            except (GitopsFlagsError, OSError) as exc:
                self.findings = []
                self.errors.append(f"reading the FeatureFlag manifests: {exc}")
        return snapshot

    def write(
        self,
        state: StoreState,
        documents: Mapping[str, Mapping[str, Any]],
        expected_version: str | None,
        audit: Sequence[Mapping[str, Any]] = (),
        message: str = "",
    ) -> str:
        version = self.inner.write(state, documents, expected_version, audit, message)
        self._publish_or_record(documents, version)
        return version

    def append_audit(self, records: Sequence[Mapping[str, Any]], expected_version: str | None) -> str:
        return self.inner.append_audit(records, expected_version)

    def read_audit(self) -> list[dict[str, Any]]:
        return self.inner.read_audit()

    def repair(self, audit: Sequence[Mapping[str, Any]] = ()) -> Repaired:
        """`apply --repair` repairs the wrapped store; the manifests follow it at the end of the run."""
        method = getattr(self.inner, "repair", None)
        if method is None:
            raise StoreError(f"{self.where} cannot be repaired")
        repaired: Repaired = method(audit)
        return repaired

    # --- beyond the protocol -----------------------------------------------------------------------

    def expected(self, documents: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """environment → the resource its document gives (environments without a document: none)."""
        return {p.environment: self._rendered(p, documents[p.environment])[0] for p in self.placements
                if p.environment in documents}

    def _rendered(self, placement: Placement, document: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
        """The resource and its bytes, rendered once per document: a run checks, publishes and settles
        the same documents, and YAML for 10,000 flags takes seconds."""
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))  # the C encoder: fast
        digest = hashlib.sha256(text.encode()).hexdigest()
        cached = self._cache.get(placement.environment)
        if cached is None or cached[0] != digest:
            resource = featureflag.resource(document, placement, flag_metadata=self.config.flag_metadata,
                                            key=self.key)
            cached = self._cache[placement.environment] = (digest, resource, featureflag.dumps(resource))
        return cached[1], cached[2]

    def check(self, documents: Mapping[str, Mapping[str, Any]]) -> list[Finding]:
        """Every manifest that is not what the documents give."""
        wanted = self.expected(documents)
        findings = []
        for target_id, group in self._groups(wanted):
            target = self.targets[target_id]
            _, found = target.read([p.path for p in group])
            for p in group:
                raw, (resource, data) = found.get(p.path), self._rendered(p, documents[p.environment])
                if raw == data:
                    continue
                verdict = featureflag.verdict(raw, resource, self.key, f"{target.where}:{p.path}", data)
                if verdict != "current":
                    detail = featureflag.differences(raw, resource, p.path) if verdict == "drift" else ""
                    findings.append(Finding(p, target.where, verdict, detail))
        return findings

    def publish(self, documents: Mapping[str, Mapping[str, Any]], version: str | None) -> list[str]:
        """Write the manifests that differ from what `documents` give; then, if the store moved meanwhile,
        publish its newer documents too. Returns the `target:path`s written."""
        written: list[str] = []
        for _ in range(ATTEMPTS):
            written += self._publish_once(documents)
            latest = self.inner.read()
            if latest.version == version:
                return written
            documents, version = latest.documents, latest.version
        return written

    def settle(self, *, dry_run: bool = False) -> Settled:
        """The end of a run: report what the first read found; publish what still differs (drift is put
        back, missed publishes caught up); record drift in the store's audit log."""
        out = Settled()
        findings = self.findings or []
        drift = [f for f in findings if f.verdict == "drift"]
        for finding in findings:
            (out.problems if finding.verdict == "drift" else out.notes).append(finding.text())
        out.problems += self.errors
        if dry_run:
            if findings:
                out.notes.append("dry run: the FeatureFlag manifests were not written")
            return out
        try:
            snapshot = self.inner.read()
            self.published += self.publish(snapshot.documents, snapshot.version)
        except (GitopsFlagsError, OSError) as exc:
            out.problems.append(f"publishing the FeatureFlag manifests: {exc}; the next run publishes them")
            return out
        if self.published:
            out.notes.append("FeatureFlag manifests written: " + ", ".join(dict.fromkeys(self.published)))
        if drift:
            out.notes.append("the manifests changed outside gitops-flags were restored from the store")
            try:
                self._audit(drift)
            except (GitopsFlagsError, OSError) as exc:
                out.problems.append(f"recording the drift in the audit log: {exc}")
        return out

    # --- helpers -----------------------------------------------------------------------------------

    def _publish_or_record(self, documents: Mapping[str, Mapping[str, Any]], version: str) -> None:
        """After the store's commit point nothing may raise: a failure is reported at the end."""
        try:
            self.published += self.publish(documents, version)
        except (GitopsFlagsError, OSError) as exc:
            self.errors.append(f"publishing the FeatureFlag manifests: {exc}; the next run publishes them")

    def _publish_once(self, documents: Mapping[str, Mapping[str, Any]]) -> list[str]:
        wanted = self.expected(documents)
        written: list[str] = []
        for target_id, group in self._groups(wanted):
            target = self.targets[target_id]
            for attempt in range(1, ATTEMPTS + 1):
                version, found = target.read([p.path for p in group])
                files = {p.path: self._rendered(p, documents[p.environment])[1] for p in group}
                changed = {path: data for path, data in files.items() if found.get(path) != data}
                if not changed:
                    break
                envs = ", ".join(p.environment for p in group if p.path in changed)
                try:
                    target.write(changed, version, MESSAGE.format(environments=envs))
                except ConflictError:
                    if attempt == ATTEMPTS:
                        raise
                    continue
                written += [f"{target.where}:{path}" for path in changed]
                break
        return written

    def _groups(self, wanted: Mapping[str, Any]) -> list[tuple[tuple[str | None, str], list[Placement]]]:
        groups: dict[tuple[str | None, str], list[Placement]] = {}
        for p in self.placements:
            if p.environment in wanted:
                groups.setdefault(p.target, []).append(p)
        return sorted(groups.items(), key=lambda item: (item[0][0] or "", item[0][1]))

    def _audit(self, drift: Sequence[Finding]) -> None:
        at = self.clock().isoformat().replace("+00:00", "Z")
        records = [
            {
                "time": at,
                "event": "manifest_drift",
                "kind": "manifest",
                "key": f"{f.target}:{f.placement.path}",
                "environment": f.placement.environment,
                "store": self.where,
                "summary": f"changed outside gitops-flags ({f.detail}); restored from the store",
            }
            for f in drift
        ]
        for attempt in range(1, ATTEMPTS + 1):
            snapshot = self.inner.read()
            try:
                self.inner.append_audit(records, snapshot.version)
                return
            except ConflictError:
                if attempt == ATTEMPTS:
                    raise


# --- opening -------------------------------------------------------------------------------------------


RepoOpener = Callable[[str, str], "Repository"]  # (OWNER/NAME, token) → repository


def github_opener(api_url: str) -> RepoOpener:
    def open_repo(name: str, token: str) -> Repository:
        from .. import github

        return github.connect(api_url, token).get_repo(name)

    return open_repo


def wrap(
    store: Store,
    policy: Policy | None,
    *,
    env: ActionsEnv,
    repo_dir: Path,
    environ: Mapping[str, str],
    now: datetime,
    directory: Path | None = None,
    open_repo: RepoOpener | None = None,
) -> Store:
    """`store` with the policy's `store.manifests` output, or `store` itself when there is none.

    `directory` (apply/advance `--manifests DIR`) writes every manifest under that directory instead of
    the policy's target, with the same paths: a local preview, the demo, tests. `open_repo` opens a
    GitHub repository with a token (default: through the API at `env.api_url`).
    """
    config = policy.store.manifests if policy is not None else None
    if directory is None and config is None:
        return store
    if policy is None:
        raise ManifestError("writing FeatureFlag manifests needs the policy (its environments)")
    config = config or ManifestsConfig()
    options: dict[str, Any] = {"key": _key(environ), "clock": lambda: now}
    if directory is not None or config.target == "directory":
        root = directory if directory is not None else repo_dir / config.directory
        return FeatureFlagStore(
            store, _local(config), policy.environments, {LOCAL: DirectoryTarget(root)}, **options
        )
    token_env = config.token_env or "GITHUB_TOKEN"
    token = environ.get(token_env, "")
    repository = env.repository
    open_repo = open_repo or github_opener(env.api_url)
    if not token or not repository:
        raise StoreError(
            f"the FeatureFlag manifests go to GitHub ({config.repository or 'this repository'}): set "
            f"{token_env} (a token that may write it) and GITHUB_REPOSITORY, or pass --manifests DIR to "
            "write them to a directory"
        )
    targets: dict[tuple[str | None, str], Target] = {}
    for p in featureflag.placements(config, policy.environments):
        if p.target not in targets:
            name = p.repository or repository
            targets[p.target] = GitHubTarget(open_repo(name, token), p.branch, name)
    return FeatureFlagStore(store, config, policy.environments, targets, **options)


LOCAL: tuple[str | None, str] = (None, "")


def _local(config: ManifestsConfig) -> ManifestsConfig:
    """The configuration with every repository and branch dropped: all files go to one directory."""
    environments = {
        env: res.model_copy(update={"repository": None, "branch": None})
        for env, res in config.environments.items()
    }
    return config.model_copy(update={"repository": None, "branch": "", "environments": environments})


def _key(environ: Mapping[str, str]) -> bytes | None:
    """The store's seal key (`GITOPS_FLAGS_STORE_KEY`): the manifests are sealed with the same secret."""
    key = key_from_env(environ)
    return key.secret if key is not None else None
