"""Metric computations that wrap the field's reference libraries."""
