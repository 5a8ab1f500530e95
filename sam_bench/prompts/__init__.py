"""Prompt generation for the interactive protocols (simulated clicks)."""
