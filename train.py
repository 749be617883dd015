"""``python train.py [data=kubric+hoi4d] [model=paper] [...]``: train the track classifier.

The entry point is :mod:`moseg.train` (configs in ``moseg/conf/train.yaml``)."""

from moseg.train import main

if __name__ == "__main__":
    main()
