"""``python -m data_prep.davis dataset.raw=...``: contract files from
DAVIS-style folders (DAVIS 2016/2017, FBMS-59, SegTrackv2).

The converter is :mod:`moseg.datasets.davis` (it picks the layout's reader: DAVIS there, FBMS-59
in :mod:`moseg.datasets.fbms`, SegTrackv2 in :mod:`moseg.datasets.segtrackv2`); settings in
``moseg/conf/dataset/davis.yaml``."""

from moseg.datasets.common import main
from moseg.datasets.davis import make_jobs

if __name__ == "__main__":
    main("davis", make_jobs)
