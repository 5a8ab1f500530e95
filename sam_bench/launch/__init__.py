"""Suites beyond one process: every (task definition, dataset, shard) as one element of a submitit job
array, on SLURM or in local processes, with retries, a scoring stage and `sam-bench status`."""
