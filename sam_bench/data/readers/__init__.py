"""Format readers; importing this package registers them all in READERS."""
