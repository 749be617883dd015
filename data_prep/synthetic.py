"""``python -m data_prep.synthetic``: procedural Kubric-like scenes with exact ground truth.

The generator is :mod:`moseg.datasets.synthetic` (``--help`` for its options)."""

from moseg.datasets.synthetic import _main

if __name__ == "__main__":
    _main()
