"""Example sam-bench plugin package (see docs/plugins.md)."""
