"""The layers of gitops_flags/, enforced: the core decides over plain values and imports no I/O.

Every module is placed in one layer in LAYERS below; a new module that is not placed fails the test.
A module may import its own layer and the layers beneath it, never one above:

    core       pure decisions over plain values: models, loading, validation, diffs, policy, approvals,
               rollout math, flagd documents, results and their renderings
    use case   one run of a command's decision over ports (a `Tree`, a `PullPort`, a `Store`): plain inputs
               in, a result value out
    adapter    I/O behind those ports: git, the GitHub API, store backends, health gates, the Actions
               environment, notification delivery
    shell      click wiring and printing: `cli`, `commands/`, the wall clock's reading (`commands/clock`)

The core and the use cases import nothing that talks to the outside world (GitHub, HTTP, sockets,
subprocesses, databases) and never read the wall clock: the time is an argument. The walk is over the
source (`ast`), so imports inside functions count as much as those at the top of a file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "gitops_flags"

CORE, USE_CASE, ADAPTER, SHELL = "core", "use case", "adapter", "shell"
RANK = {CORE: 0, USE_CASE: 1, ADAPTER: 2, SHELL: 3}

# Module (dotted, relative to gitops_flags) → layer. `PKG.*` places every module of a package.
LAYERS: dict[str, str] = {
    # core
    "__init__": CORE,
    "problems": CORE,
    "model": CORE,
    "tree": CORE,  # the Tree port, its in-memory fake and DirTree (a working directory, read only)
    "loader": CORE,
    "semantics": CORE,
    "safe_schema": CORE,
    "schema_compat": CORE,
    "egress": CORE,  # the gate rules; the connect-time guard that applies them lives in `health`
    "validate": CORE,
    "validate.*": CORE,  # `validate.parallel` forks workers running the same pure checks; no outside I/O
    "changes": CORE,
    "codeowners": CORE,
    "policy": CORE,
    "matching": CORE,
    "approvals": CORE,
    "snapshot": CORE,
    "result": CORE,
    "check_report": CORE,
    "render": CORE,
    "render.*": CORE,
    "flagd": CORE,
    "featureflag": CORE,
    "rollout": CORE,
    "reconcile": CORE,
    "walk": CORE,  # which commits apply walks, over the History port
    "notify": CORE,  # the texts of notifications; `delivery` sends them
    "doctor": CORE,  # the settings checklist over the API's answers; `github/settings` fetches them
    "two_policies": CORE,
    "store.base": CORE,  # the Store port and its documents
    "store.state": CORE,
    "store.seal": CORE,  # HMAC over plain bytes; the key is an argument
    # use cases
    "check": USE_CASE,
    "plan": USE_CASE,
    "apply": USE_CASE,
    "advance": USE_CASE,
    "advance_report": USE_CASE,  # renders advance's `Outcome`, so it sits beside its use case
    # adapters
    "git": ADAPTER,
    "delivery": ADAPTER,  # sends what `notify` and `advance_report` write: webhook, PR comments, outbox
    "github": ADAPTER,
    "github.*": ADAPTER,
    "health": ADAPTER,
    "actions_env": ADAPTER,
    "store": ADAPTER,  # `open_store`: picks a backend from a URL (the backends load lazily)
    "store.file": ADAPTER,
    "store.github_branch": ADAPTER,
    "store.litestar": ADAPTER,
    # `translate` and `rules` are pure, but importing them runs the package, which loads the backends.
    "store.litestar.*": ADAPTER,
    "store.featureflags": ADAPTER,
    "store.manifest_targets": ADAPTER,
    # shell
    "__main__": SHELL,
    "cli": SHELL,
    "inert": SHELL,  # the one printer of every command
    "jsonschemas": SHELL,  # `python -m gitops_flags.jsonschemas --write` regenerates the committed files
    "commands": SHELL,
    "commands.*": SHELL,
}

# Modules and packages the core and the use cases must not import (the first dotted parts that match).
FORBIDDEN = (
    "github",  # PyGithub
    "requests", "responses", "urllib3", "httpx", "aiohttp", "http", "urllib.request", "urllib.error",
    "socket", "ssl", "subprocess",
    "redis", "sqlalchemy", "advanced_alchemy",
)
# Reading the wall clock: the time is an argument of the core (`commands/clock` reads it).
CLOCK_ATTRIBUTES = {"datetime": {"now", "utcnow", "today"}, "date": {"today"},
                    "time": {"time", "time_ns", "monotonic", "monotonic_ns", "perf_counter", "sleep"}}

# One git adapter: these modules are imported only by the modules named (issue 16).
ONLY_IN: dict[str, set[str]] = {"subprocess": {"git"}}

# A forbidden module the core may import for named pure functions only.
PURE_USES: dict[tuple[str, str], set[str]] = {
    # Parses the legacy IPv4 forms ("0x7f.1", "2130706433") exactly as a resolver does; no network.
    ("egress", "socket"): {"inet_aton"},
}

# Violations present today, each with the move that removes it. The test fails when one is gone, so this
# list only shrinks: delete the entry in the change that fixes it. Empty since the moves of issue 16.
KNOWN_VIOLATIONS: set[tuple[str, str]] = set()


@dataclass(frozen=True)
class Use:
    module: str  # what the importing module reaches (dotted, relative to gitops_flags, or external)
    internal: bool
    line: int


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def layer_of(module: str) -> str | None:
    if module in LAYERS:
        return LAYERS[module]
    package = module.rpartition(".")[0]
    while package:
        if f"{package}.*" in LAYERS:
            return LAYERS[f"{package}.*"]
        package = package.rpartition(".")[0]
    return None


@cache
def tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), str(path))


def uses(module: str, path: Path, source: ast.AST | None = None) -> Iterator[Use]:
    """Every import in the file (or in `source`, a part of it), at any depth: inside functions and
    `if TYPE_CHECKING:` too."""
    known = modules()
    is_package = path.name == "__init__.py"
    package = "" if module == "__init__" else module if is_package else module.rpartition(".")[0]
    here = package.split(".") if package else []
    for node in ast.walk(source or tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "gitops_flags" or alias.name.startswith("gitops_flags."):
                    inside = alias.name.removeprefix("gitops_flags").lstrip(".")
                    yield Use(inside or "__init__", True, node.lineno)
                else:
                    yield Use(alias.name, False, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0 and not (node.module or "").startswith("gitops_flags"):
                yield Use(node.module or "", False, node.lineno)
                continue
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                target = [*base, *((node.module or "").split(".") if node.module else [])]
            else:
                target = (node.module or "").split(".")[1:]
            for alias in node.names:
                name = ".".join([*target, alias.name])
                # `from . import x` and `from .pkg import sub` name modules; otherwise x is an attribute.
                yield Use(name if name in known else ".".join(target) or "__init__", True, node.lineno)


def clock_reads(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree(path)):
        if isinstance(node, ast.Attribute):
            owner = node.value  # `datetime.now`, `dt.datetime.now`
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if node.attr in CLOCK_ATTRIBUTES.get(name, ()):
                yield f"{name}.{node.attr}", node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module == "time":
            for alias in node.names:
                if alias.name in CLOCK_ATTRIBUTES["time"]:
                    yield f"time.{alias.name}", node.lineno


def forbidden(name: str) -> str | None:
    for bad in FORBIDDEN:
        if name == bad or name.startswith(bad + "."):
            return bad
    return None


def attributes_of(path: Path, name: str) -> set[str]:
    return {node.attr for node in ast.walk(tree(path))
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == name}


def violations() -> set[tuple[str, str]]:
    """(module, what it must not use): forbidden imports and clock reads of the core and the use cases,
    every import of a higher layer, and a module of ONLY_IN imported outside its owners."""
    found: set[tuple[str, str]] = set()
    for module, path in modules().items():
        layer = layer_of(module)
        if layer is None:
            continue
        pure = RANK[layer] <= RANK[USE_CASE]
        for use in uses(module, path):
            if use.internal:
                target_layer = layer_of(use.module)
                if target_layer is not None and RANK[target_layer] > RANK[layer]:
                    found.add((module, use.module))
            elif (owners := ONLY_IN.get(use.module.partition(".")[0])) is not None and module not in owners:
                found.add((module, use.module.partition(".")[0]))
            if not use.internal and pure and (bad := forbidden(use.module)):
                allowed = PURE_USES.get((module, bad))
                if allowed is None or not attributes_of(path, bad) <= allowed:
                    found.add((module, bad))
        if pure:
            found |= {(module, read) for read, _ in clock_reads(path)}
    return found


def where(module: str, what: str) -> str:
    path = modules()[module]
    lines = sorted({u.line for u in uses(module, path) if u.module == what or forbidden(u.module) == what}
                   | {line for read, line in clock_reads(path) if read == what})
    return f"{path.relative_to(PACKAGE.parent)}:{','.join(map(str, lines))} {module} → {what}"


def test_every_module_is_placed() -> None:
    unplaced = sorted(m for m in modules() if layer_of(m) is None)
    assert unplaced == [], f"place these modules in a layer in LAYERS (tests/test_layers.py): {unplaced}"


def test_every_placement_names_a_module() -> None:
    names = modules()
    stale = sorted(
        key for key in LAYERS
        if (key.endswith(".*") and not any(m.startswith(key[:-1]) for m in names))
        or (not key.endswith(".*") and key not in names)
    )
    assert stale == [], f"LAYERS places modules that no longer exist: {stale}"


def test_the_core_imports_no_io_and_no_layer_above_it() -> None:
    new = sorted(violations() - KNOWN_VIOLATIONS)
    assert new == [], "layer violations:\n" + "\n".join(where(m, w) for m, w in new)


def test_known_violations_are_not_stale() -> None:
    fixed = sorted(KNOWN_VIOLATIONS - violations())
    assert fixed == [], f"no longer violations; remove them from KNOWN_VIOLATIONS: {fixed}"


def test_packages_of_the_core_load_only_the_core() -> None:
    """Importing `store.base` runs `store/__init__.py` first: a package holding core modules may import
    only the core at its top level (its adapters load inside functions)."""
    names = modules()
    for module in names:
        if layer_of(module) not in (CORE, USE_CASE):
            continue
        package = module.rpartition(".")[0]
        while package:
            top: list[ast.stmt] = [s for s in tree(names[package]).body
                                   if isinstance(s, ast.Import | ast.ImportFrom)]
            top_level = ast.Module(body=top, type_ignores=[])
            loaded = {u.module for u in uses(package, names[package], top_level) if u.internal}
            above = sorted(m for m in loaded if RANK[layer_of(m) or SHELL] > RANK[USE_CASE])
            assert above == [], f"importing {module} runs {package}/__init__.py, which loads {above}"
            package = package.rpartition(".")[0]


# The checks themselves, on small sources: a test that cannot fail proves nothing.
def test_the_walk_finds_imports_inside_functions_and_clock_reads(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text("def f():\n    import subprocess\n    from datetime import datetime\n"
                    "    return datetime.now(), time.monotonic()\n")
    assert {u.module for u in uses("m", path)} == {"subprocess", "datetime"}
    assert sorted(clock_reads(path)) == [("datetime.now", 4), ("time.monotonic", 4)]
    assert forbidden("github.Repository") == "github" and forbidden("urllib.parse") is None


def test_relative_imports_resolve_to_modules() -> None:
    names = modules()
    # `from .. import github` inside a function, `from .manifest_targets import …`, `from ..model import …`
    reached = {u.module for u in uses("store.featureflags", names["store.featureflags"]) if u.internal}
    assert {"github", "store.manifest_targets", "model", "featureflag"} <= reached
    assert layer_of("github.client") == ADAPTER and layer_of("commands.apply") == SHELL
