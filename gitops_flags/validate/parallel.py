"""Checking flag files on every core: contiguous slices of the file list go to forked worker processes,
which return each slice's problems and cross-file facts (`FlagChunk`), never documents or models.

A pool costs about as much to start as checking a few hundred files, so smaller runs stay in this process
(`SERIAL_BELOW`, from `benchmarks/validate.py --crossover`). Workers are forked, so they inherit the
imported modules, the policy and the parsed schemas instead of receiving them; where fork is not the safe
default (macOS, Windows) the run stays serial. The merged result is the one a serial run gives: problems
are sorted by file first, and a file's problems come from one worker in their serial order.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from ..model import Flag
from ..tree import DirTree
from .flag_files import FlagChunk, FlagRun, check_flag_files

# Files; below this a pool costs more than it saves. Measured on 2 cores (`benchmarks/validate.py --crossover
# --instructions`): the workers add 1-3% instructions and ~20 ms of kernel time (fork, page copies); the
# critical path is 0.94x the serial run's instructions at 200 files, 0.87x at 400, 0.70x at 1,600. Below
# ~400 the gain on idle cores is within the fork's cost, and on a busy machine there is none.
SERIAL_BELOW = 400
# Slices per worker, handed out one at a time: slices of equal length differ in cost (a folder of object
# flags checks slower), and with 4 each one worker finished up to ~100 ms after the other at 10,000 files;
# with 16, within ~40 ms. A slice's result is a few KB, so more of them cost nothing measurable.
SLICES_PER_WORKER = 16

# Set in the parent just before the fork: each worker reads its inherited copy.
_job: tuple[DirTree, FlagRun] | None = None


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def workers_for(files: int, jobs: int | None) -> int:
    """How many processes to use: `jobs` when given, else one per core for a run large enough to gain."""
    if sys.platform != "linux":
        return 1
    if jobs is not None:
        return max(1, min(jobs, files))
    return 1 if files < SERIAL_BELOW else min(cores(), files)


def slices(paths: Sequence[str], count: int) -> list[Sequence[str]]:
    """`paths` cut into `count` contiguous runs of nearly equal length (the first ones one longer)."""
    size, extra = divmod(len(paths), count)
    out: list[Sequence[str]] = []
    start = 0
    for i in range(count):
        end = start + size + (1 if i < extra else 0)
        if end > start:
            out.append(paths[start:end])
        start = end
    return out


def _work(paths: Sequence[str]) -> FlagChunk:
    assert _job is not None
    tree, run = _job
    return check_flag_files(tree, paths, run)


def check_flag_files_parallel(
    tree: DirTree, paths: Sequence[str], run: FlagRun, jobs: int | None
) -> FlagChunk:
    """`validate.check_flag_files` over `paths`, split over worker processes when that pays."""
    workers = workers_for(len(paths), jobs)
    if workers <= 1 or run.keep_flags:
        return check_flag_files(tree, paths, run)
    import multiprocessing  # only a run that uses the pool pays for importing it

    Flag.model_rebuild()  # models are built on first use: build it once here, not once in every worker
    global _job
    _job = (tree, run)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            parts = pool.map(_work, slices(paths, workers * SLICES_PER_WORKER), chunksize=1)
    finally:
        _job = None
    merged = FlagChunk()
    for part in parts:
        merged.problems += part.problems
        merged.unreported += part.unreported
        merged.refs |= part.refs
        merged.key_positions.update(part.key_positions)
        merged.sizes.update(part.sizes)
        merged.recheck += part.recheck
    return merged
