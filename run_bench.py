#!/usr/bin/env python
"""sam-bench command line (same as the installed `sam-bench`); see README.md."""
import sys

from sam_bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
