"""gitops-flags: govern feature-flag and schema changes made as YAML edits in pull requests."""

__version__ = "0.1.0"
