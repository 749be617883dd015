"""Run a benchmark: ``python evaluate.py bench=davis2016_moving``.

NOT IMPLEMENTED YET: metrics, densification and benchmarks come after the trainer and the data
preparation tools. Until then this entry point only says so.
"""

import sys

if __name__ == "__main__":
    sys.exit("evaluate.py: benchmarks are not implemented yet (planned after the trainer).")
