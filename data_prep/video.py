"""``python -m data_prep.video dataset.raw=...``: contract files from
any video file or frame folder.

The converter is :mod:`moseg.datasets.video`; settings in
``moseg/conf/dataset/video.yaml``."""

from moseg.datasets.common import main
from moseg.datasets.video import make_jobs

if __name__ == "__main__":
    main("video", make_jobs)
