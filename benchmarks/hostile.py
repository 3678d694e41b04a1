"""Every hostile repository of tests/hostile/corpus.py, validated as a whole process: exit 1, a JSON problem
naming the file, within 2 s and 200 MB of peak RSS.

    python benchmarks/hostile.py [CASE...]

The reference, in the same run: `gitops-flags validate` of the untouched bundled example (the same process
start-up, imports and 13 flags). Each case runs RUNS times; the figures are the median wall time and the
largest peak RSS. Exit status 1 when any case misses its limits.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "hostile"))
from corpus import CASES, example, materialize

RUNS = 3
MAX_SECONDS = 2.0
MAX_RSS_MB = 200.0


def run_once(root: Path) -> tuple[int, float, float, str]:
    """(exit status, wall seconds, peak RSS in MB, stdout) of one `gitops-flags validate` process."""
    start = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen([sys.executable, "-m", "gitops_flags", "validate", "--repo", str(root),
                                 "--format", "json"], stdout=out, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode()
    return proc.returncode, seconds, usage.ru_maxrss / 1024, text  # Linux: ru_maxrss in KiB


def measure(root: Path) -> tuple[int, float, float, str]:
    runs = [run_once(root) for _ in range(RUNS)]
    return runs[0][0], statistics.median(r[1] for r in runs), max(r[2] for r in runs), runs[0][3]


def main() -> int:
    names = sys.argv[1:] or sorted(CASES)
    failed = []
    with tempfile.TemporaryDirectory(prefix="gitops-flags-hostile-") as tmp:
        code, ref_s, ref_mb, _ = measure(example(Path(tmp) / "example"))
        print(f"reference: validate of the bundled example: exit {code}, {ref_s:.2f} s, {ref_mb:.0f} MB")
        print(f"{'case':42} {'exit':>4} {'seconds':>8} {'× ref':>6} {'MB':>6}  problem on the file")
        for name in names:
            root = materialize(name, Path(tmp) / name)
            code, seconds, mb, out = measure(root)
            try:
                problems = json.loads(out)
            except ValueError:
                problems = []
            named = [p for p in problems
                     if p.get("file") == CASES[name].file and p.get("severity") == "error"]
            ok = code == 1 and bool(named) and seconds <= MAX_SECONDS and mb <= MAX_RSS_MB
            title = named[0]["title"] if named else "-"
            print(f"{name:42} {code:>4} {seconds:>8.2f} {seconds / ref_s:>6.1f} {mb:>6.0f}  {title}"
                  + ("" if ok else "   <-- FAILS"))
            if not ok:
                failed.append(name)
    print(f"{len(names) - len(failed)} of {len(names)} cases within exit 1, {MAX_SECONDS} s and "
          f"{MAX_RSS_MB:.0f} MB" + (f"; failing: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
