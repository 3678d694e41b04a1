"""The action's install: locked, hashed dependencies that satisfy pyproject's bounds, installed by uv, and
a link to the action's own files instead of a wheel build."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from test_action_yml import load

import gitops_flags

ROOT = Path(__file__).resolve().parents[1]


def pins(path: Path) -> dict[str, tuple[str, int]]:
    """name → (version, number of hashes) in a `uv pip compile --generate-hashes` file."""
    text = path.read_text(encoding="utf-8")
    out: dict[str, tuple[str, int]] = {}
    for block in re.split(r"\n(?=[A-Za-z])", text):
        match = re.match(r"([A-Za-z0-9_.-]+)==([^ ;\\]+)", block)
        if match:
            out[canonicalize_name(match.group(1))] = (match.group(2), block.count("--hash=sha256:"))
    return out


def test_the_lock_pins_every_dependency_within_pyproject_bounds_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    locked = pins(ROOT / "action" / "requirements.txt")
    for line in project["dependencies"]:
        requirement = Requirement(line)
        version, _ = locked[canonicalize_name(requirement.name)]
        assert requirement.specifier.contains(version), f"{requirement} but the lock pins {version}"
    assert all(hashes >= 1 for _, hashes in locked.values())
    assert {"pydantic-core", "rpds-py", "urllib3"} <= set(locked)  # transitive ones too: nothing resolved
    uv = pins(ROOT / "action" / "uv.txt")
    assert list(uv) == ["uv"] and uv["uv"][1] >= 10  # wheels for every runner platform


def test_the_install_step_uses_uv_and_the_lock_and_always_links() -> None:
    steps = load(ROOT / "action.yml")["runs"]["steps"]
    install = next(s for s in steps if s.get("name") == "Install gitops-flags's dependencies")
    assert install["if"] == "steps.cache.outputs.cache-hit != 'true'"
    assert "--require-hashes" in install["run"] and "action/requirements.txt" in install["run"]
    assert "uv.txt" in install["run"] and "uv\" pip install" in install["run"]
    link = next(s for s in steps if s.get("name") == "Link gitops-flags")
    assert "if" not in link  # a cached environment is pointed at this run's action folder
    key_step = next(s for s in steps if s.get("id") == "venv")
    assert "action/requirements.txt" in key_step["run"]


def test_link_makes_a_virtualenv_run_the_action_sources(tmp_path: Path) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    for _ in range(2):  # again on a cached environment: replaced, not duplicated
        subprocess.run([sys.executable, str(ROOT / "action" / "link.py"), str(env), str(ROOT)], check=True)
    probe = ("import gitops_flags, importlib.metadata as m; "
             "print(gitops_flags.__file__); print(m.version('gitops-flags'))")
    out = subprocess.run([str(env / "bin" / "python"), "-c", probe], check=True, capture_output=True,
                         text=True).stdout.split()
    assert out == [str(ROOT / "gitops_flags" / "__init__.py"), gitops_flags.__version__]
    script = env / "bin" / "gitops-flags"
    assert script.stat().st_mode & 0o111
    assert script.read_text().startswith(f"#!{env / 'bin' / 'python'}\n")
    assert "from gitops_flags.cli import main" in script.read_text()
