"""The shared SAM core: checkpoint loading, the segmenter interface, mask helpers, embedding cache."""
