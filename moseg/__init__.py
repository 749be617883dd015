"""moseg: moving-object segmentation in videos from long-term point tracks."""

__version__ = "0.1.0"
