"""Which file is what (flag, schema, by the policy's `flags_dir`), and paths that are wrong as paths: two
flag files with one key, names some checkouts cannot hold (Windows device names, case clashes)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable

from ..model import Policy
from ..problems import Problem

YAML_SUFFIXES = (".yaml", ".yml")
DEFAULT_FLAGS_DIR = "flags"


def flags_folder(policy: Policy | None) -> str:
    return (policy.flags_dir if policy is not None else DEFAULT_FLAGS_DIR).strip("/")


def schemas_folder(policy: Policy | None) -> str:
    return f"{flags_folder(policy)}/schemas"


def is_flag_path(path: str, policy: Policy | None) -> bool:
    """A YAML file anywhere under the flags folder, except under its `schemas/` folder."""
    if not path.endswith(YAML_SUFFIXES):
        return False
    folder = flags_folder(policy) + "/"
    return path.startswith(folder) and not path.startswith(folder + "schemas/")


def is_schema_path(path: str, policy: Policy | None) -> bool:
    """A YAML file directly in `<flags_dir>/schemas/` (flags refer to schemas by file name)."""
    if not path.endswith(YAML_SUFFIXES):
        return False
    folder = schemas_folder(policy)
    # The prefix test first: it rejects a flag file without `dirname` (validate asks of 10,000 paths thrice).
    return path.startswith(folder) and posixpath.dirname(path) == folder


def file_stem(path: str) -> str:
    name = path.rpartition("/")[2]
    return name.rpartition(".")[0] or name


def duplicate_keys(paths: Iterable[str]) -> list[Problem]:
    """Flag keys equal file stems, so two flag files with the same stem in different folders clash."""
    by_stem: dict[str, list[str]] = {}
    for path in paths:
        by_stem.setdefault(file_stem(path), []).append(path)
    problems = []
    for stem, files in by_stem.items():
        if len(files) < 2:
            continue
        for path in files:
            others = ", ".join(f for f in files if f != path)
            problems.append(Problem(path, None, None, f"the flag key {stem!r} is also used by {others}; keys "
                                    "must be unique across the flags folder", "error", "duplicate-flag-key"))
    return problems


_RESERVED = frozenset({"con", "prn", "aux", "nul", "conin$", "conout$",
                       *(f"{d}{n}" for d in ("com", "lpt") for n in "123456789¹²³")})
_UNPORTABLE = re.compile(r'[<>:"\\|?*\x00-\x1f]')


def _name_problem(name: str) -> str | None:
    """Why Windows (or macOS's default file system) cannot hold a file or folder called `name`."""
    if name.split(".", 1)[0].rstrip(" ").lower() in _RESERVED:
        return f"{name!r} is a reserved device name on Windows (with any extension)"
    if name.endswith((".", " ")):
        return f"{name!r} ends in a {'dot' if name.endswith('.') else 'space'}, which Windows drops"
    bad = _UNPORTABLE.search(name)
    if bad is not None:
        return f"{name!r} holds {bad.group()!r}, which Windows does not allow in a file name"
    return None


# One pass over a whole path finds any part `_name_problem` would refuse (the hot path: 10,000 clean paths).
_SUSPECT = re.compile(r'(?:^|/)(?:con|prn|aux|nul|conin\$|conout\$|(?:com|lpt)[1-9¹²³]) *(?:\.[^/]*)?(?:/|$)'
                      r'|[. ](?:/|$)|[<>:"\\|?*\x00-\x1f]', re.IGNORECASE)


def path_problems(paths: Iterable[str], wanted: set[str] | None = None) -> list[Problem]:
    """Paths some checkouts cannot hold: reserved or unportable names, and two paths that differ only by
    case (a case-insensitive checkout keeps one of them). Reported on the files in `wanted` (all: None)."""
    problems: list[Problem] = []
    listed = list(paths)
    folders: set[str] = set()
    for path in listed:
        if (wanted is None or path in wanted) and _SUSPECT.search(path):
            reasons = (w for w in map(_name_problem, path.split("/")) if w)
            why = next(reasons, f"{path!r} holds a reserved name")
            problems.append(Problem(path, None, None, f"{why}: some checkouts cannot hold this path", "error",
                                    "unportable-path"))
        folder = path.rpartition("/")[0]
        while folder and folder not in folders:
            folders.add(folder)
            folder = folder.rpartition("/")[0]
    by_folded: dict[str, list[str]] = {}
    for name in (*listed, *folders):
        by_folded.setdefault(name.casefold(), []).append(name)
    clashes = {folded: sorted(spelt) for folded, spelt in by_folded.items() if len(spelt) > 1}
    for path in listed if clashes else ():
        if wanted is not None and path not in wanted:
            continue
        parts = path.split("/")
        for i in range(len(parts)):
            mine = "/".join(parts[: i + 1])
            spelt = clashes.get(mine.casefold())
            if spelt:
                others = ", ".join(s for s in spelt if s != mine)
                message = (f"{mine} differs from {others} only by case; a case-insensitive checkout "
                           "(Windows, macOS) keeps only one of them")
                problems.append(Problem(path, None, None, message, "error", "case-clash"))
                break
    return problems
