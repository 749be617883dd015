"""``python -m data_prep.synthetic_video``: synthetic scenes rendered as DAVIS-layout video.

The generator is :mod:`moseg.datasets.synthetic_video` (``--help`` for its options)."""

from moseg.datasets.synthetic_video import main

if __name__ == "__main__":
    main()
