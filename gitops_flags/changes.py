"""What a PR changes: one `Change` per (flag, environment), per schema and per governance file.

`diff(base, head, policy, changed)` compares two trees. It loads only the changed files and what they
reference, so it scales with the change, not with the repository:

- a flag's identity is its key, the file's stem: a file moved to another folder is the same flag (moved
  without edits → an `update` in each environment saying so; with edits → the usual per-environment changes);
- per (flag, environment): `create` / `delete` (the flag or the environment came or went), `toggle` (only
  `enabled` changed), `rollout` (only the rollout plan changed), `update` (anything else, including any
  edit outside `environments`, and an edit that changes bytes but not meaning, such as a comment);
- per schema: `schema_create` (not breaking), `schema_update` (`breaking` from `schema_compat`),
  `schema_delete` (breaking); a changed JSON Schema must raise `version`;
- the policy file, any CODEOWNERS and `.github/workflows/**` are `governance` changes.

It also validates the head side of what changed (changed flags, changed schemas, and the flags that use a
changed schema, found by a byte search before any parsing) and returns those problems, so that `plan` and
`check` report an invalid PR. A change's `tags` are the union of the flag's tags at base and head, so that
dropping a tag cannot dodge a rule that matches it.

One module (~540 lines): the per-environment classification, moves and schema reach are one diff over
the same loaded files; its validation is a call into `validate`, not a copy.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, get_args, runtime_checkable

from . import validate
from .loader import load_bytes
from .model import (
    CODEOWNERS_PATHS,
    POLICY_PATH,
    ChangeKind,
    ChangeType,
    EnvironmentState,
    Flag,
    Policy,
    RolloutPlan,
    SchemaDoc,
)
from .problems import Problem, ProblemError
from .tree import Tree


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    key: str  # flag key, schema name, or the governance file's path
    path: str  # the file at head (at base for a delete)
    change_type: ChangeType
    summary: str  # human text: "rollout 25% → 50%", "enabled false → true", "created", ...
    environment: str | None = None  # flag changes only
    before: Any = None  # plain JSON-able value (environment state, schema document, ...) or None
    after: Any = None
    breaking: bool = False  # schema changes only
    old_path: str | None = None  # when the file moved
    tags: tuple[str, ...] = ()  # the flag's tags (at head, or base for a delete)
    files: tuple[str, ...] = field(default=())  # every file this change covers (for stale approvals)

    def ident(self) -> str:
        """A stable identity, used to key state and to compare evaluations."""
        env = f"@{self.environment}" if self.environment else ""
        return f"{self.kind}:{self.key}{env}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "path": self.path,
            "old_path": self.old_path,
            "environment": self.environment,
            "change_type": self.change_type,
            "summary": self.summary,
            "breaking": self.breaking,
            "before": self.before,
            "after": self.after,
        }


# --- the diff of two trees --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Diff:
    changes: tuple[Change, ...]
    problems: tuple[Problem, ...]


@runtime_checkable
class Searchable(Protocol):
    """A tree that can find files containing a text faster than reading them all (`git.GitTree`)."""

    def paths_containing(self, needles: Sequence[str], prefix: str) -> set[str]: ...


WORKFLOWS_DIR = ".github/workflows/"
_Raw = dict[str, tuple[bytes | None, bytes | None]]  # path → (bytes at base, bytes at head); None = absent
_KIND_ORDER = {kind: i for i, kind in enumerate(get_args(ChangeKind))}


def is_governance_path(path: str, policy: Policy | None = None, policy_path: str = POLICY_PATH) -> bool:
    """The policy file, any CODEOWNERS GitHub reads, and every file under `.github/workflows/`."""
    return path == policy_path or path in CODEOWNERS_PATHS or path.startswith(WORKFLOWS_DIR)


def diff(
    base: Tree,
    head: Tree,
    policy: Policy,
    changed: Iterable[str] | None = None,
    *,
    policy_path: str = POLICY_PATH,
) -> Diff:
    """The changes from `base` to `head`, and the problems of the head side of what changed.

    `changed` lists the paths that may differ (both paths of a rename); None compares every file.
    """
    return _Differ(base, head, policy, policy_path).run(changed)


class _Differ:
    def __init__(self, base: Tree, head: Tree, policy: Policy, policy_path: str) -> None:
        self.base, self.head, self.policy, self.policy_path = base, head, policy, policy_path
        self.problems: list[Problem] = []
        self.broken: set[str] = set()  # head paths that exist but cannot be read

    def run(self, changed: Iterable[str] | None) -> Diff:
        raw = self._changed_bytes(changed)
        out: list[Change] = []
        for path, (before, after) in raw.items():
            if is_governance_path(path, self.policy, self.policy_path):
                out.append(_governance(path, before, after, self.policy_path))
        schema_paths = [p for p in raw if validate.is_schema_path(p, self.policy)]
        names = {_stem(p) for p in schema_paths}
        pairs = self._flag_pairs(raw)
        head_flags = self._validate_head([h for _, h in pairs if h], self._mentioning(names), names)
        for path in schema_paths:
            users = {p: f for p, f in head_flags.items() if f.schema_ref == _stem(path)}
            out += self._schema(path, *raw[path], users)
        for base_path, head_path in pairs:
            out += self._flag(base_path, head_path, head_flags)
        problems = sorted(set(self.problems), key=lambda p: (p.file, p.line or 0, p.col or 0, p.message))
        return Diff(tuple(sorted(out, key=self._order)), tuple(problems))

    def _order(self, c: Change) -> tuple[int, str, int, str, str]:
        envs = self.policy.environments
        rank = len(envs) if c.environment not in envs else envs.index(c.environment)
        if c.environment is None:
            rank = -1
        return (_KIND_ORDER[c.kind], c.key, rank, c.environment or "", c.path)

    # --- reading --------------------------------------------------------------------------------------

    def _governed(self, path: str) -> bool:
        return (
            is_governance_path(path, self.policy, self.policy_path)
            or validate.is_flag_path(path, self.policy)
            or validate.is_schema_path(path, self.policy)
        )

    def _changed_bytes(self, changed: Iterable[str] | None) -> _Raw:
        paths = set(self.base.paths()) | set(self.head.paths()) if changed is None else set(changed)
        raw: _Raw = {}
        for path in sorted(p for p in paths if self._governed(p)):
            before, after = self._read(self.base, path, head=False), self._read(self.head, path, head=True)
            if before != after or path in self.broken:
                raw[path] = (before, after)
        return raw

    def _read(self, tree: Tree, path: str, head: bool) -> bytes | None:
        """The file's bytes; a head file that cannot be read is a problem and counts as present (b"")."""
        try:
            return tree.read(path)
        except ProblemError as exc:
            problem = exc.problem
        except OSError as exc:  # DirTree: a symlink leading outside the repository
            problem = Problem(path, None, None, f"cannot read the file: {exc}", title="read-error")
        if not head:
            return None
        self.problems.append(problem)
        self.broken.add(path)
        return b""

    def _schema_file(self, tree: Tree, name: str | None) -> str | None:
        if not name:
            return None
        prefix = f"{self.policy.schemas_dir}/{name}."
        for path in tree.paths(prefix):
            if validate.is_schema_path(path, self.policy) and _stem(path) == name:
                return path
        return None

    def _validate_head(self, changed: list[str], mentioning: list[str], names: set[str]) -> dict[str, Flag]:
        """Validate the changed head flag files, the flags that may use a changed schema (`mentioning`),
        and the schemas they use, parsing each file once. Their flags by path.

        A file that only mentions a changed schema's name is reported when it uses the schema, or when it
        does not parse (it may use the schema; when unsure, report)."""
        wanted = sorted({p for p in [*changed, *mentioning] if p not in self.broken})
        if not wanted:
            return {}
        try:
            validation = validate.validate_tree(self.head, self.policy, only=wanted)
        except ProblemError as exc:  # a referenced schema the tree refuses to read (a symlink, ...)
            self.problems.append(exc.problem)
            return {}
        flags = {entry.path: entry.flag for entry in validation.flags.values()}
        for path in wanted:  # two files sharing a key: validation keeps the first
            if path not in flags:
                flag, _ = validate.read_flag(self.head, path)
                if flag is not None:
                    flags[path] = flag
        bystanders = {
            p for p in set(mentioning) - set(changed) if p in flags and flags[p].schema_ref not in names
        }
        self.problems += [p for p in validation.problems if p.file not in bystanders]
        return {p: f for p, f in flags.items() if p not in bystanders}

    # --- schemas --------------------------------------------------------------------------------------

    def _mentioning(self, names: set[str]) -> list[str]:
        """Head flag files whose bytes contain a changed schema's name: the only ones that can use it, so a
        schema change does not load every flag of a large repository."""
        if not names:
            return []
        prefix = f"{self.policy.flags_dir.strip('/')}/"
        needles = validate.schema_needles(names)
        if isinstance(self.head, Searchable):
            found: Iterable[str] = self.head.paths_containing(needles, prefix)
        else:
            encoded = [n.encode() for n in needles]
            found = [p for p, raw in ((p, self._peek(p)) for p in self.head.paths(prefix))
                     if any(n in raw for n in encoded)]
        return sorted(p for p in found if validate.is_flag_path(p, self.policy) and p not in self.broken)

    def _peek(self, path: str) -> bytes:
        if not validate.is_flag_path(path, self.policy) or path in self.broken:
            return b""
        return self._read(self.head, path, head=False) or b""

    def _schema(
        self, path: str, before: bytes | None, after: bytes | None, users: dict[str, Flag]
    ) -> list[Change]:
        name = _stem(path)
        old = validate.read_schema(self.base, path)[0] if before is not None else None
        new: SchemaDoc | None = None
        if after is not None and path not in self.broken:
            new, found = validate.read_schema(self.head, path)
            self.problems += found

        def change(change_type: ChangeType, summary: str, breaking: bool) -> Change:
            return Change(
                kind="schema", key=name, path=path, change_type=change_type, summary=summary,
                before=_schema_json(old), after=_schema_json(new), breaking=breaking, files=(path,),
            )  # fmt: skip

        if after is None:
            if users:
                keys = ", ".join(sorted(_stem(p) for p in users))
                message = f"schema {name} is deleted but flags still reference it: {keys}"
                self.problems.append(Problem(path, None, None, message, title="schema-in-use"))
            return [change("schema_delete", "deleted", True)]
        if before is None:
            version = f" (version {new.version})" if new is not None else ""
            return [change("schema_create", f"created{version}", False)]
        if old is None or new is None:
            side = "the new version" if new is None else "the previous version"
            return [change("schema_update", f"cannot compare: {side} does not validate", True)]
        if _json(old.json_schema) == _json(new.json_schema):
            summary = "description changed" if old.description != new.description else "no change in meaning"
            if old.version != new.version:
                summary += f"; version {old.version} → {new.version}"
            # A new description is a change too: consumers that pin a version must see a new one.
            self._check_version(path, after, old, new, changed=old.description != new.description)
            return [change("schema_update", summary, False)]
        self._check_version(path, after, old, new, changed=True)
        from . import schema_compat  # jsonschema, loaded only when a schema's meaning changed

        breaking, reasons = schema_compat.is_breaking(old.json_schema, new.json_schema)
        verdict = f"breaking: {_first(reasons, 3)}" if breaking else "compatible: old values still pass"
        summary = f"version {old.version} → {new.version}; {verdict}"
        return [change("schema_update", summary, breaking)]

    def _check_version(self, path: str, raw: bytes, old: SchemaDoc, new: SchemaDoc, changed: bool) -> None:
        if new.version > old.version or (not changed and new.version == old.version):
            return
        wanted = old.version + 1
        if new.version == old.version:
            message = f"schema {new.name} changed but version stayed {old.version}; raise it to {wanted}"
        else:
            message = f"schema {new.name} version went down from {old.version} to {new.version}; use {wanted}"
        try:
            line, col = load_bytes(raw, path).position(("version",))
        except ProblemError:
            line, col = None, None
        self.problems.append(Problem(path, line, col, message, title="schema-version"))

    # --- flags ----------------------------------------------------------------------------------------

    def _flag_pairs(self, raw: _Raw) -> list[tuple[str | None, str | None]]:
        """(base path, head path) per changed flag file; a key that left one folder for another is a move."""
        by_key: dict[str, tuple[list[str], list[str], list[str]]] = {}
        for path, (before, after) in raw.items():
            if not validate.is_flag_path(path, self.policy):
                continue
            in_place, gone, new = by_key.setdefault(_stem(path), ([], [], []))
            side = gone if after is None else new if before is None else in_place
            side.append(path)
        pairs: list[tuple[str | None, str | None]] = []
        for _, (in_place, gone, new) in sorted(by_key.items()):
            if not in_place and len(gone) == 1 and len(new) == 1:
                pairs.append((gone[0], new[0]))
            else:  # several files with one key at head is a duplicate-key problem, reported by validation
                pairs += [(p, p) for p in in_place] + [(p, None) for p in gone] + [(None, p) for p in new]
        return pairs

    def _flag(
        self, base_path: str | None, head_path: str | None, head_flags: dict[str, Flag]
    ) -> list[Change]:
        old = validate.read_flag(self.base, base_path)[0] if base_path else None
        new = head_flags.get(head_path) if head_path else None
        path = head_path or base_path
        assert path is not None
        moved = base_path if base_path and head_path and base_path != head_path else None
        tags = tuple(dict.fromkeys([*(new.tags if new else []), *(old.tags if old else [])]))
        schema_files = [
            self._schema_file(self.base, old.schema_ref if old else None),
            self._schema_file(self.head, new.schema_ref if new else None),
        ]
        files = tuple(dict.fromkeys(p for p in (base_path, head_path, *schema_files) if p))

        def change(env: str | None, change_type: ChangeType, summary: str, before: Any, after: Any) -> Change:
            if moved and change_type != "delete" and "moved from" not in summary:
                summary += f"; moved from {moved} to {head_path}"
            return Change(
                kind="flag", key=_stem(path), path=path, change_type=change_type, summary=summary,
                environment=env, before=before, after=after, old_path=moved, tags=tags, files=files,
            )  # fmt: skip

        old_envs = old.environments if old else {}
        new_envs = new.environments if new else {}
        if head_path is not None and new is None:  # present at head but does not validate
            change_type: ChangeType = "update" if old else "create"
            summary = "does not validate (see problems)"
            return [change(env, change_type, summary, _env_json(s), None) for env, s in _or_none(old_envs)]
        if old is None or new is None:
            created = new is not None
            return [
                change(env, "create" if created else "delete", "created" if created else "deleted",
                       None if created else _env_json(s), _env_json(s) if created else None)
                for env, s in _or_none(new_envs if created else old_envs)
            ]  # fmt: skip
        top = _flag_parts(old, new)
        out: list[Change] = []
        for env in list(dict.fromkeys([*old_envs, *new_envs])):
            before, after = old_envs.get(env), new_envs.get(env)
            if before is None or after is None:
                added = before is None
                summary = "; ".join(["environment added" if added else "environment removed", *top])
                kind: ChangeType = "create" if added else "delete"
                out.append(change(env, kind, summary, _env_json(before), _env_json(after)))
                continue
            kinds, parts = _env_parts(old, new, before, after)
            if top or kinds:
                kind = "update" if top else _env_change_type(kinds)
                out.append(change(env, kind, "; ".join([*top, *parts]), _env_json(before), _env_json(after)))
        if not old_envs and not new_envs and top:
            out.append(change(None, "update", "; ".join(top), None, None))
        if not out:  # the bytes changed, the meaning did not: a move, or comments and formatting
            summary = "no change in meaning (comments, layout)"
            if moved:
                summary = f"moved from {moved} to {head_path}"
            out = [change(e, "update", summary, _env_json(s), _env_json(s)) for e, s in _or_none(new_envs)]
        return out


# --- summaries and plain values ---------------------------------------------------------------------------


def _governance(path: str, before: bytes | None, after: bytes | None, policy_path: str) -> Change:
    what = "policy" if path == policy_path else "CODEOWNERS" if path in CODEOWNERS_PATHS else "workflow"
    verb = "added" if before is None else "deleted" if after is None else "changed"
    return Change(kind="governance", key=path, path=path, change_type="governance", summary=f"{what} {verb}",
                  files=(path,))


def _flag_parts(old: Flag, new: Flag) -> list[str]:
    """What changed outside `environments` (it affects every environment)."""
    parts: list[str] = []
    if old.key != new.key:
        parts.append(f"key {old.key} → {new.key}")
    if old.type != new.type:
        parts.append(f"type {old.type} → {new.type}")
    if old.schema_ref != new.schema_ref:
        parts.append(f"schema {old.schema_ref or 'none'} → {new.schema_ref or 'none'}")
    if _json(old.variants) != _json(new.variants):
        parts.append(_variants_text(old.variants, new.variants))
    if old.default_variant != new.default_variant:
        parts.append(f"default_variant {old.default_variant} → {new.default_variant}")
    for name in ("name", "description", "owner"):
        if getattr(old, name) != getattr(new, name):
            parts.append(f"{name} changed")
    if old.tags != new.tags:
        added = [t for t in new.tags if t not in old.tags]
        removed = [t for t in old.tags if t not in new.tags]
        detail = "; ".join(x for x in (_listed("added", added), _listed("removed", removed)) if x)
        parts.append(f"tags changed ({detail or 'reordered'})")
    return parts


def _variants_text(old: dict[str, Any], new: dict[str, Any]) -> str:
    added = [k for k in new if k not in old]
    removed = [k for k in old if k not in new]
    edited = [k for k in new if k in old and _json(old[k]) != _json(new[k])]
    pieces = [_listed("added", added), _listed("removed", removed), _listed("new value for", edited)]
    detail = "; ".join(p for p in pieces if p)
    return f"variants changed ({detail or 'reordered'})"


def _listed(label: str, names: list[str]) -> str:
    return f"{label} {', '.join(names)}" if names else ""


def _env_parts(
    old_flag: Flag, new_flag: Flag, old: EnvironmentState, new: EnvironmentState
) -> tuple[set[str], list[str]]:
    """({"toggle"} / {"rollout"} / {"update"}... for what changed, human parts) for one environment."""
    kinds: set[str] = set()
    parts: list[str] = []
    if old.enabled != new.enabled:
        kinds.add("toggle")
        parts.append(f"enabled {_bool(old.enabled)} → {_bool(new.enabled)}")
    if old.default_variant != new.default_variant:
        kinds.add("update")
        parts.append(f"default_variant {_variant(old, old_flag)} → {_variant(new, new_flag)}")
    if _json(_dump(old.rules)) != _json(_dump(new.rules)):
        kinds.add("update")
        counts = f" ({len(old.rules)} → {len(new.rules)})" if len(old.rules) != len(new.rules) else ""
        parts.append(f"rules changed{counts}")
    rollout = _rollout_text(old.rollout, new.rollout)
    if rollout:
        kinds.add("rollout")
        parts.append(rollout)
    return kinds, parts


def _env_change_type(kinds: set[str]) -> ChangeType:
    if kinds == {"toggle"}:
        return "toggle"
    if kinds == {"rollout"}:
        return "rollout"
    return "update"


def _variant(state: EnvironmentState, flag: Flag) -> str:
    if state.default_variant is not None:
        return state.default_variant
    return f"{flag.default_variant} (flag default)"


def _rollout_text(old: RolloutPlan | None, new: RolloutPlan | None) -> str:
    """"rollout 25% → 50%", "rollout started: on 5% → 100% over 5 stages every 2h", ...; "" = same meaning."""
    if old is None or new is None:
        if new is not None:
            return f"rollout started: {_plan_text(new)}"
        return "rollout removed" if old is not None else ""
    parts: list[str] = []
    if old.variant != new.variant:
        parts.append(f"rollout variant {old.variant} → {new.variant}")
    before, after = old.percentages(), new.percentages()
    if before != after:
        if len(before) == 1 and len(after) == 1:
            parts.append(f"rollout {before[0]}% → {after[0]}%")
        else:
            parts.append(f"rollout stages {_stages(before)} → {_stages(after)}")
    if old.delay_seconds() != new.delay_seconds():
        parts.append(f"stage delay {old.stage_delay} → {new.stage_delay}")
    if old.paused != new.paused:
        parts.append("rollout paused" if new.paused else "rollout resumed")
    if old.start_at != new.start_at:
        parts.append(f"rollout start {_when(old)} → {_when(new)}")
    if _json(_dump(old.health_check)) != _json(_dump(new.health_check)):
        verb = "added" if old.health_check is None else "removed" if new.health_check is None else "changed"
        parts.append(f"health check {verb}")
    if old.on_failure != new.on_failure:
        parts.append(f"on failure {old.on_failure} → {new.on_failure}")
    return "; ".join(parts)


def _plan_text(plan: RolloutPlan) -> str:
    p = plan.percentages()
    text = f"{plan.variant} at {p[0]}%" if len(p) == 1 else (
        f"{plan.variant} {p[0]}% → {p[-1]}% over {len(p)} stages every {plan.stage_delay}"
    )
    if plan.start_at is not None:
        text += f", starting {_when(plan)}"
    return text + (", paused" if plan.paused else "")


def _stages(percentages: list[int]) -> str:
    return "/".join(str(p) for p in percentages) + "%"


def _when(plan: RolloutPlan) -> str:
    return plan.start_at.isoformat().replace("+00:00", "Z") if plan.start_at else "now"


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _first(reasons: list[str], n: int) -> str:
    more = f" (+{len(reasons) - n} more)" if len(reasons) > n else ""
    return "; ".join(reasons[:n]) + more


def _or_none(envs: dict[str, EnvironmentState]) -> Iterator[tuple[str | None, EnvironmentState | None]]:
    """Each environment, or one `None` environment for a flag that has none (so the flag still shows)."""
    if not envs:
        yield None, None
    yield from envs.items()


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json", by_alias=True) if hasattr(value, "model_dump") else value


def _env_json(state: EnvironmentState | None) -> Any:
    return None if state is None else state.model_dump(mode="json", by_alias=True, exclude_none=True)


def _schema_json(schema: SchemaDoc | None) -> Any:
    return None if schema is None else schema.model_dump(mode="json", by_alias=True)


def _json(value: Any) -> str:
    """Compare values as JSON: Python's == takes True for 1."""
    return json.dumps(value, sort_keys=True, default=str)


def _stem(path: str) -> str:
    name = posixpath.basename(path)
    return name.rpartition(".")[0] or name
