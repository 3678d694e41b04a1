"""What the store remembers between runs, as JSON-able pydantic models (`state.json`).

Flag definitions are not here: they live in the flagd documents, one per environment. This file holds
what those documents cannot: the commit last applied, where each rollout stands, the units of work
that make `apply` resumable and idempotent, and the outbox of notifications not yet delivered.

The models are frozen values; the functions that decide (apply, advance) return new ones.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from ..model import RolloutPlan

FORMAT_VERSION = 1
MAX_SUCCEEDED_UNITS = 500
# An outbox entry is tried for at most this long, or this many failed attempts, then dropped (audited).
OUTBOX_MAX_AGE = timedelta(days=7)
OUTBOX_MAX_ATTEMPTS = 20

RolloutStatus = Literal["scheduled", "running", "paused", "completed", "rolled_back"]
RolloutEvent = Literal["started", "advanced", "paused", "resumed", "rolled_back", "completed"]
GateOutcome = Literal["passed", "failed", "inconclusive"]
PauseCause = Literal["plan", "kill_switch", "gate_failed", "gate_inconclusive", "other"]
OnFailure = Literal["rollback", "pause"]
OutboxKind = Literal["pr_comment", "webhook"]

# The reasons a pause is recorded with. Stores written before `paused_by` existed carry the cause only in
# `reason`, so these prefixes are read back once, when such a state is loaded.
REASON_PLAN = "paused by the plan (paused: true)"
REASON_KILL_SWITCH = "kill switch: the flag is disabled in this environment"
GATE_FAILED = "health gate failed"
GATE_INCONCLUSIVE = "health gate inconclusive"


class _Value(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RolloutHistoryEntry(_Value):
    stage_index: int = Field(ge=-1)
    percentage: int = Field(ge=0, le=100)
    at: AwareDatetime
    event: RolloutEvent


class GateResult(_Value):
    at: AwareDatetime
    outcome: GateOutcome
    detail: str = ""


class RolloutState(_Value):
    """Where one (flag, environment) rollout stands.

    `percentage` is the share of targeting keys served `variant` right now, and the only number the
    flagd compiler reads. It usually equals `stages[stage_index]`, but not after a PR changed the stage
    list mid-rollout (the rollout then continues from the percentage it had reached).
    """

    variant: str
    stages: list[int] = Field(min_length=1)
    stage_index: int = Field(-1, ge=-1, description="-1: not started yet")
    percentage: int = Field(0, ge=0, le=100)
    status: RolloutStatus = "scheduled"
    entered_at: AwareDatetime | None = Field(None, description="When the current stage was entered")
    start_at: AwareDatetime | None = None
    stage_delay_seconds: int = Field(ge=0)
    history: list[RolloutHistoryEntry] = Field(default_factory=list)
    reason: str = ""
    paused_by: PauseCause | None = Field(None, description="Why a paused rollout is paused; None otherwise")
    on_failure: OnFailure = Field("rollback", description="The plan's on_failure, for display")
    last_gate: GateResult | None = None
    pr: int | None = Field(None, description="The PR that started the rollout")
    plan_hash: str = Field(description="plan_hash() of the approved plan; another hash means a PR edited it")

    @model_validator(mode="before")
    @classmethod
    def _legacy_pause(cls, data: Any) -> Any:
        """A paused state written before `paused_by` existed: the cause from the reason's prefix."""
        if isinstance(data, dict) and data.get("status") == "paused" and data.get("paused_by") is None:
            data = {**data, "paused_by": pause_cause_of(str(data.get("reason") or ""))}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> RolloutState:
        if any(not 0 < p <= 100 for p in self.stages):
            raise ValueError(f"stages must be percentages in 1..100, got {self.stages}")
        if self.stage_index >= len(self.stages):
            raise ValueError(f"stage_index {self.stage_index} is past the last of {len(self.stages)} stages")
        if self.status in ("scheduled", "rolled_back") and self.percentage != 0:
            raise ValueError(f"a {self.status} rollout serves 0%, not {self.percentage}%")
        if self.status == "completed" and self.percentage != 100:
            raise ValueError(f"a completed rollout serves 100%, not {self.percentage}%")
        if (self.paused_by is not None) != (self.status == "paused"):
            raise ValueError(f"paused_by {self.paused_by!r} does not fit a {self.status} rollout")
        return self

    def next_stage_due(self) -> datetime | None:
        """When the next stage may be entered (time rule only, no gate); None when nothing is ahead."""
        if self.status == "scheduled":
            return self.start_at
        if self.status != "running" or self.stage_index >= len(self.stages) - 1:
            return None
        due = self.entered_at + timedelta(seconds=self.stage_delay_seconds) if self.entered_at else None
        candidates = [t for t in (due, self.start_at) if t is not None]
        return max(candidates) if candidates else None


def pause_cause_of(reason: str) -> PauseCause:
    """The cause a legacy reason text names."""
    if reason == REASON_PLAN:
        return "plan"
    if reason == REASON_KILL_SWITCH:
        return "kill_switch"
    if reason.startswith(GATE_INCONCLUSIVE):
        return "gate_inconclusive"
    if reason.startswith(GATE_FAILED):
        return "gate_failed"
    return "other"


class UnitOfWork(_Value):
    """One change applied once: the seeds' persistent workflow step, made durable in the store."""

    id: str = Field(min_length=1, description="unit_id(merge commit, change ident)")
    input: dict[str, Any] = Field(default_factory=dict)
    output: dict[str, Any] | None = None
    succeeded_at: AwareDatetime | None = None
    failed_at: AwareDatetime | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.succeeded_at is not None


class OutboxEntry(_Value):
    """A notification not yet delivered: the transactional outbox.

    It is written in the same compare-and-swap write as the change it reports, so a run that dies after
    that write leaves it behind, and the next `apply` or `advance` delivers it. It is removed, in a
    second write, once delivered. A webhook's URL is a secret and is never stored: the URL configured
    when the entry is delivered is used.
    """

    id: str = Field(min_length=1, description="Stable, so a re-send can be recognised (notify.outbox_marker)")
    kind: OutboxKind
    pr: int | None = Field(None, description="pr_comment: the pull request to comment on")
    body: str = Field("", description="pr_comment: the comment, Markdown")
    payload: dict[str, Any] | None = Field(None, description="webhook: the JSON to POST")
    attempts: int = Field(0, ge=0, description="Failed deliveries so far")
    last_error: str | None = None
    created_at: AwareDatetime

    @model_validator(mode="after")
    def _complete(self) -> OutboxEntry:
        if self.kind == "pr_comment" and (self.pr is None or not self.body):
            raise ValueError(f"outbox entry {self.id!r}: a pr_comment needs `pr` and `body`")
        if self.kind == "webhook" and self.payload is None:
            raise ValueError(f"outbox entry {self.id!r}: a webhook needs `payload`")
        return self

    def expired(self, now: datetime) -> bool:
        """Too old to be worth sending, or failed too often."""
        return now - self.created_at >= OUTBOX_MAX_AGE or self.attempts >= OUTBOX_MAX_ATTEMPTS


class StoreState(_Value):
    format_version: Literal[1] = 1
    applied_commit: str | None = None
    rollouts: dict[str, dict[str, RolloutState]] = Field(
        default_factory=dict, description="flag key → environment → rollout"
    )
    units: list[UnitOfWork] = Field(default_factory=list, description="Oldest first")
    outbox: list[OutboxEntry] = Field(
        default_factory=list, description="Notifications not yet delivered, oldest first"
    )

    @model_serializer(mode="wrap")
    def _omit_empty_outbox(self, handler: SerializerFunctionWrapHandler) -> Any:
        """`outbox` is written only while something is pending, so a store without pending notifications
        keeps the bytes (and the readers) it had before the outbox existed."""
        data = handler(self)
        if isinstance(data, dict) and not self.outbox:
            data.pop("outbox", None)
        return data

    @model_validator(mode="before")
    @classmethod
    def _known_format(cls, data: Any) -> Any:
        if isinstance(data, dict):
            version = data.get("format_version", FORMAT_VERSION)
            if isinstance(version, int) and version > FORMAT_VERSION:
                raise ValueError(
                    f"format_version {version} was written by a newer gitops-flags; this one reads "
                    f"{FORMAT_VERSION}. Upgrade gitops-flags."
                )
        return data

    # --- reading --------------------------------------------------------------------------------

    def rollout(self, key: str, environment: str) -> RolloutState | None:
        return self.rollouts.get(key, {}).get(environment)

    def rollouts_for(self, environment: str) -> dict[str, RolloutState]:
        """flag key → rollout in one environment: what `flagd.compile_environment` takes."""
        return {key: envs[environment] for key, envs in sorted(self.rollouts.items()) if environment in envs}

    def unit(self, unit_id: str) -> UnitOfWork | None:
        for unit in self.units:
            if unit.id == unit_id:
                return unit
        return None

    # --- new values -----------------------------------------------------------------------------

    def with_rollout(self, key: str, environment: str, rollout: RolloutState | None) -> StoreState:
        """A copy with the rollout set, or removed when `rollout` is None."""
        rollouts = {k: dict(v) for k, v in self.rollouts.items()}
        envs = rollouts.setdefault(key, {})
        if rollout is None:
            envs.pop(environment, None)
        else:
            envs[environment] = rollout
        if not envs:
            del rollouts[key]
        return self.model_copy(update={"rollouts": rollouts})

    def with_unit(self, unit: UnitOfWork) -> StoreState:
        """A copy with the unit recorded (replacing one with the same id), succeeded units bounded."""
        units = [u for u in self.units if u.id != unit.id] + [unit]
        return self.model_copy(update={"units": bound_units(units)})

    def with_applied_commit(self, commit: str) -> StoreState:
        return self.model_copy(update={"applied_commit": commit})

    def with_outbox(self, entries: list[OutboxEntry]) -> StoreState:
        """A copy with the entries added, each replacing a pending one with the same id."""
        if not entries:
            return self
        ids = {e.id for e in entries}
        outbox = [e for e in self.outbox if e.id not in ids] + entries
        return self.model_copy(update={"outbox": outbox})


def bound_units(units: list[UnitOfWork], keep: int = MAX_SUCCEEDED_UNITS) -> list[UnitOfWork]:
    """Keep every unit that has not succeeded (it must be resumed) and the last `keep` that did."""
    succeeded = [i for i, u in enumerate(units) if u.succeeded]
    dropped = set(succeeded[: max(0, len(succeeded) - keep)])
    return [u for i, u in enumerate(units) if i not in dropped]


def unit_id(merge_commit: str, change_ident: str) -> str:
    """Stable identity of applying one change of one merge: `<commit>/<kind>:<key>@<env>`."""
    return f"{merge_commit}/{change_ident}"


def plan_hash(plan: RolloutPlan) -> str:
    """Hash of a rollout plan as written in the flag file, to notice when a PR edits it."""
    data = plan.model_dump(mode="json", by_alias=True)
    raw = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(raw.encode()).hexdigest()
