"""``python -m data_prep.hoi4d dataset.raw=...``: contract files from HOI4D videos and motion masks.

The converter is :mod:`moseg.datasets.hoi4d`; settings in
``moseg/conf/dataset/hoi4d.yaml``."""

from moseg.datasets.common import main
from moseg.datasets.hoi4d import make_jobs

if __name__ == "__main__":
    main("hoi4d", make_jobs)
