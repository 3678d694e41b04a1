"""Whole-process measurements, paired: each round runs every command once, in turn, so that load from other
processes on the machine hits all of them alike; the figures are medians over the rounds.

A measurement is one child process: wall time, CPU time (user + system, its own children included) and peak
RSS of the largest process (the command or one of its workers), taken from `wait4`'s resource usage.

Wall and CPU time move with the machine's load; `instructions` counts the user-space instructions of a
command and of every process it forks or runs (under valgrind's callgrind), which does not. This machine's
virtual CPU exposes no hardware counters (`perf stat -e instructions` says "not supported").
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

PYTHON = sys.executable


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds
    cpu: float  # seconds, the process and the children it waited for
    rss_mb: float  # peak RSS of the largest process in the tree


def run_once(argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
             ok: Sequence[int] = (0, 1)) -> Sample:
    """Run `argv` once, output discarded; raise when it exits with a code outside `ok`."""
    start = time.perf_counter()
    proc = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in ok:
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {tail}")
    # wait4 reports the child's own usage, its reaped workers included (maxrss: the largest process).
    cpu = usage.ru_utime + usage.ru_stime
    return Sample(wall, cpu, usage.ru_maxrss / 1024)


def environment() -> dict[str, str]:
    """This environment, with bytecode caching on (as after a normal install) and no coverage hooks."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def paired(commands: Mapping[str, Sequence[str]], rounds: int, cwd: Path | None = None,
           env: Mapping[str, str] | None = None) -> dict[str, list[Sample]]:
    """Every command once per round, in turn, after one unmeasured warm-up round."""
    env = env if env is not None else environment()
    for argv in commands.values():
        run_once(argv, cwd, env)
    out: dict[str, list[Sample]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            out[name].append(run_once(argv, cwd, env))
    return out


def median(samples: Sequence[Sample], attr: str = "wall") -> float:
    return statistics.median(getattr(s, attr) for s in samples)


def ratio_median(a: Sequence[Sample], b: Sequence[Sample], attr: str = "wall") -> float:
    """Median of the per-round ratios a/b (pairs taken in the same round)."""
    return statistics.median(getattr(x, attr) / getattr(y, attr) for x, y in zip(a, b, strict=True))


def load_average() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores"


@dataclass(frozen=True)
class Instructions:
    main: int  # the command's own process
    others: tuple[int, ...]  # the processes it forked or ran (pool workers, git), largest first

    @property
    def total(self) -> int:
        return self.main + sum(self.others)

    @property
    def critical(self) -> int:
        """The command plus its largest worker: the least work between start and end on enough idle cores
        (the workers run side by side; kernel time for fork and page copies is not counted)."""
        return self.main + max(self.others, default=0)


def instructions(argv: Sequence[str], cwd: Path | None = None, env: Mapping[str, str] | None = None,
                 ok: Sequence[int] = (0, 1)) -> Instructions:
    """User-space instructions of one run of `argv` and of the processes it forks or executes, counted by
    callgrind (deterministic up to hash seeds: independent of the machine's load; about 50x slower)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise RuntimeError("valgrind is not installed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="gitops-flags-callgrind-") as tmp:
        # A forked worker starts counting at zero: callgrind would count the parent's work before the fork.
        command = [valgrind, "--tool=callgrind", "--trace-children=yes", "--zero-before=PyOS_AfterFork_Child",
                   f"--callgrind-out-file={tmp}/cg.%p", *argv]
        proc = subprocess.run(command, cwd=cwd, env=dict(env) if env is not None else environment(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        if proc.returncode not in ok:
            raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}: {proc.stderr[-2000:]!r}")
        main_pid = int(re.findall(rb"^==(\d+)== ", proc.stderr, re.M)[0])
        counts: dict[int, int] = {}
        for out in Path(tmp).iterdir():
            summary = re.search(rb"^(?:summary|totals): (\d+)", out.read_bytes(), re.M)
            if summary:
                counts[int(out.name.rpartition(".")[2])] = int(summary[1])
    others = tuple(sorted((n for pid, n in counts.items() if pid != main_pid), reverse=True))
    return Instructions(counts.get(main_pid, 0), others)
