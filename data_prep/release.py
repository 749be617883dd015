"""``python -m data_prep.release dataset.raw=...``: contract files from
the SegAnyMo release's preprocessed data.

The converter is :mod:`moseg.datasets.release`; settings in
``moseg/conf/dataset/release.yaml``."""

from moseg.datasets.common import main
from moseg.datasets.release import make_jobs

if __name__ == "__main__":
    main("release", make_jobs)
