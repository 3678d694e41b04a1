"""What a PR changes: one `Change` per (flag, environment), per schema and per governance file."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .model import ChangeKind, ChangeType


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
