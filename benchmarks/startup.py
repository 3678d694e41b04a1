"""Start-up: `gitops-flags validate` on the bundled example (this repository's own flags/ and policy) and
`gitops-flags --help`, whole processes paired with `python -c pass` in the same rounds.

    python benchmarks/startup.py [--rounds 21]

Target (issue 15): validate on the bundled example ≤ 120 ms.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import PYTHON, load_average, median, paired

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    cli = [PYTHON, "-m", "gitops_flags"]
    results = paired({
        "python -c pass": [PYTHON, "-c", "pass"],
        "gitops-flags --help": [*cli, "--help"],
        "gitops-flags validate (bundled example)": [*cli, "validate", "--repo", str(ROOT)],
    }, args.rounds)
    print(f"median of {args.rounds} paired rounds; {load_average()}")
    for name, samples in results.items():
        print(f"{name:42} {median(samples) * 1000:6.0f} ms wall {median(samples, 'cpu') * 1000:6.0f} ms CPU "
              f"{median(samples, 'rss_mb'):5.0f} MB peak RSS")


if __name__ == "__main__":
    main()
