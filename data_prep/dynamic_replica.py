"""``python -m data_prep.dynamic_replica dataset.raw=...``: contract files from
Dynamic Replica.

The converter is :mod:`moseg.datasets.dynamic_replica`; settings in
``moseg/conf/dataset/dynamic_replica.yaml``."""

from moseg.datasets.common import main
from moseg.datasets.dynamic_replica import make_jobs

if __name__ == "__main__":
    main("dynamic_replica", make_jobs)
