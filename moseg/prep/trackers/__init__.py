"""Point trackers. ``flow`` (OpenCV, no weights) is the default; ``tapir`` and ``cotracker`` wrap
optional packages and are imported only when selected (``tracker=tapir``)."""
