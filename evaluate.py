"""``python evaluate.py bench=davis2016_moving [ckpt=...] [densify=...]``: run a benchmark.

The entry point is :mod:`moseg.evaluate` (configs in ``moseg/conf/evaluate.yaml``)."""

from moseg.evaluate import main

if __name__ == "__main__":
    main()
