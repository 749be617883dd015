"""Moving tracks -> per-object pixel masks: SAM2 (``sam2``) or weight-free on CPU
(``weight_free``). Both follow :class:`moseg.densify.base.Densifier`."""

from moseg.densify.base import Densifier, DensifyResult, TrackSet

__all__ = ["Densifier", "DensifyResult", "TrackSet"]
