"""What JSON (and so flagd) can hold: dates, NaN and non-text keys cannot, nor integers beyond a double."""

from __future__ import annotations

import math
import sys
from typing import Any

from .report import Path, Report, show

_TYPE_NAMES: dict[type, str] = {bool: "a boolean", str: "text", int: "a number", float: "a number",
                                dict: "a mapping", list: "a list", type(None): "null"}


def type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), f"a {type(value).__name__}")


def _non_json(value: Any, path: Path) -> tuple[Path, Any] | None:
    """The first value inside `value` that JSON (and so flagd) cannot hold: dates, NaN, non-text keys."""
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return (*path, k), k
            found = _non_json(v, (*path, k))
            if found:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = _non_json(v, (*path, i))
            if found:
                return found
    elif beyond_double(value) or not isinstance(value, str | int | float | bool | None):
        return path, value
    return None


def beyond_double(value: Any) -> bool:
    """NaN, infinity, or an integer outside what an IEEE double holds (compared exactly, never converted)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max


def json_problem(report: Report, value: Any, path: Path) -> None:
    found = _non_json(value, path)
    if found is not None:
        where, bad = found
        if isinstance(bad, float):
            report.add(where, f"{bad} is not a finite number, which JSON cannot hold", "not-json")
        elif isinstance(bad, int) and not isinstance(bad, bool):
            report.add(where, f"{show(bad)} is too large for a 64-bit float, which flagd and JSON readers "
                       "use", "number-too-large")
        else:
            what = {"datetime": "a date and time", "date": "a date"}.get(type(bad).__name__, type_name(bad))
            report.add(where, f"{bad} is read as {what} (YAML), which JSON cannot hold; quote it to keep it "
                       "as text", "not-json")
