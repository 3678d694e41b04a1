"""Cold install of the action, as its install step runs on a fresh runner: nothing cached (a new pip
target, an empty uv cache, a new virtualenv), then `gitops-flags validate` on the bundled example to show
that the install works.

    python benchmarks/action_install.py [--rounds 3] [--old]

--old also times the previous step (`python -m venv` + `pip install <action>`, which resolves and builds).
Each round is a new cold install; the figures are medians over the rounds. Target (issue 15): ≤ 5 s. The
figures depend on the network to PyPI; the runner's is usually faster.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


STEPS: dict[str, list[float]] = {}  # label -> seconds, one per round


def timed(label: str, argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    STEPS.setdefault(label, []).append(seconds)
    return seconds


def new_install(tmp: Path, env: dict[str, str]) -> float:
    uv_dir, venv = tmp / "uv", tmp / "venv"
    env = {**env, "UV_CACHE_DIR": str(tmp / "uv-cache"), "PIP_NO_CACHE_DIR": "1"}
    total = timed("pip install uv (hash-locked, --target)", [
        BASE_PYTHON, "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--quiet",
        "--require-hashes", "--no-deps", "--target", str(uv_dir), "-r", str(ROOT / "action" / "uv.txt")], env)
    uv = str(uv_dir / "bin" / "uv")
    total += timed("uv venv", [uv, "venv", "--quiet", "--python", BASE_PYTHON, str(venv)], env)
    total += timed("uv pip install -r action/requirements.txt", [
        uv, "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), "--require-hashes",
        "-r", str(ROOT / "action" / "requirements.txt")], env)
    total += timed("action/link.py", [str(venv / "bin" / "python"), str(ROOT / "action" / "link.py"),
                                      str(venv), str(ROOT)], env)
    timed("(check) gitops-flags validate, bundled example", [
        str(venv / "bin" / "gitops-flags"), "validate", "-C", str(ROOT)], env)
    return total


def old_install(tmp: Path, env: dict[str, str]) -> float:
    venv = tmp / "old-venv"
    env = {**env, "PIP_NO_CACHE_DIR": "1"}
    total = timed("python -m venv", [BASE_PYTHON, "-m", "venv", str(venv)], env)
    total += timed("pip install <action> (resolve + build)", [
        str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
        "--quiet", str(ROOT)], env)
    return total


def report(title: str, totals: list[float], target: str = "") -> None:
    print(f"{title}, median of {len(totals)} cold rounds:")
    for label, seconds in STEPS.items():
        print(f"  {label:48} {statistics.median(seconds):6.2f} s")
    rounds = ", ".join(f"{t:.2f}" for t in totals)
    print(f"  total {statistics.median(totals):.2f} s (rounds: {rounds}){target}")
    STEPS.clear()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--old", action="store_true")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))}
    totals = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="gitops-flags-install-") as tmp:
            totals.append(new_install(Path(tmp), env))
    report("cold install with uv (the action's install step)", totals, "; target ≤ 5 s")
    if args.old:
        olds = []
        for _ in range(args.rounds):
            with tempfile.TemporaryDirectory(prefix="gitops-flags-install-") as tmp:
                olds.append(old_install(Path(tmp), env))
        report("previous install (pip)", olds)


if __name__ == "__main__":
    main()
