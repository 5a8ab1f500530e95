"""The engine's own types and stores, below the tasks: run context, per-image results, progress."""
