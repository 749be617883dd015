"""moseg: moving-object segmentation in videos from long-term point tracks.

``moseg.segment(video, ...)`` segments a video (see :mod:`moseg.segmentation.api`); it is
imported on first use, so ``import moseg`` stays light.
"""

from typing import Any

__version__ = "0.1.0"
__all__ = ["segment", "Point", "Box", "SegmentResult"]


def __getattr__(name: str) -> Any:
    if name in ("segment", "SegmentResult"):
        from moseg.segmentation import api

        return getattr(api, name)
    if name in ("Point", "Box"):
        from moseg.segmentation import prompts

        return getattr(prompts, name)
    raise AttributeError(f"module 'moseg' has no attribute {name!r}")
