"""Test-session settings shared by every test module."""

import os

# Tests create real git repositories; a fresh CI machine has no git identity and may have a global config.
os.environ.setdefault("GIT_AUTHOR_NAME", "gitops-flags tests")
os.environ.setdefault("GIT_AUTHOR_EMAIL", "tests@example.com")
os.environ.setdefault("GIT_COMMITTER_NAME", "gitops-flags tests")
os.environ.setdefault("GIT_COMMITTER_EMAIL", "tests@example.com")
os.environ["GIT_CONFIG_NOSYSTEM"] = "1"
os.environ.setdefault("GIT_CONFIG_GLOBAL", os.devnull)
# Never let a developer's real GitHub context leak into tests.
for _name in ("GITHUB_ACTIONS", "GITHUB_EVENT_PATH", "GITHUB_EVENT_NAME", "GITHUB_TOKEN", "GITHUB_OUTPUT",
              "GITHUB_STEP_SUMMARY", "GITHUB_REPOSITORY", "GITHUB_API_URL"):
    os.environ.pop(_name, None)
