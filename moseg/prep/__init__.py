"""Turning videos into contract files: frame reading, point trackers, depth and semantic features.

The pieces are chosen by config (``moseg/conf/tracker``, ``moseg/conf/depth``,
``moseg/conf/features``) and built with
:func:`hydra.utils.instantiate`, so a back-end that needs an optional package is only imported when
it is selected. :mod:`moseg.prep.pipeline` joins them into one call per video.
"""
