"""Datasets: the instance-dataset interface, format readers and the config-file registry."""
