"""Models; each module registers its entries in MODELS."""
