"""End-to-end tests: real `gitops-flags` processes against a local double of GitHub's REST API."""
