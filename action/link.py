"""Make a virtual environment run gitops-flags from the action's own files, without building a wheel.

    python action/link.py VENV [SOURCE]        (SOURCE: the action's folder; default: this file's parent's)

The action's install step puts only the locked dependencies (action/requirements.txt) into VENV, which is
cached by the lock's hash. Building and installing the package itself took seconds (setuptools in an
isolated build environment); instead this writes, in a few milliseconds and on every run (so a cached
environment always points at the running action's folder):

- a `.pth` file naming SOURCE, so that `import gitops_flags` reads the action's pinned files;
- a `gitops_flags-<version>.dist-info` with the package's name and version (for `--version`);
- `VENV/bin/gitops-flags`, the command the workflow steps run.

Standard library only: it runs before anything is importable.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

NAME = "gitops-flags"


def version(source: Path) -> str:
    init = (source / "gitops_flags" / "__init__.py").read_text(encoding="utf-8")
    match = re.search(r'^__version__ = "([^"]+)"', init, re.M)
    if match is None:
        raise SystemExit(f"no __version__ in {source}/gitops_flags/__init__.py")
    return match.group(1)


def purelib(venv: Path) -> Path:
    python = venv / "bin" / "python"
    out = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def link(venv: Path, source: Path) -> None:
    source = source.resolve()
    site = purelib(venv)
    (site / "gitops_flags_action.pth").write_text(f"{source}\n", encoding="utf-8")
    for old in site.glob("gitops_flags-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"gitops_flags-{version(source)}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {NAME}\nVersion: {version(source)}\n",
                                   encoding="utf-8")
    (info / "INSTALLER").write_text("gitops-flags action/link.py\n", encoding="utf-8")
    script = venv / "bin" / "gitops-flags"
    script.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\n\nfrom gitops_flags.cli import main\n\n"
                      "sys.exit(main())\n", encoding="utf-8")
    script.chmod(0o755)


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__, file=sys.stderr)
        return 2
    venv = Path(argv[0]).absolute()
    source = Path(argv[1]) if len(argv) == 2 else Path(__file__).resolve().parents[1]
    link(venv, source)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
