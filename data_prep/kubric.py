"""``python -m data_prep.kubric dataset.raw=...``: contract files from Kubric MOVi-F.

The converter is :mod:`moseg.datasets.kubric`; settings in
``moseg/conf/dataset/kubric.yaml``."""

from moseg.datasets.common import main
from moseg.datasets.kubric import make_jobs

if __name__ == "__main__":
    main("kubric", make_jobs)
