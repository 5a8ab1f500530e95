"""Protocols; each module registers one task in TASKS."""
