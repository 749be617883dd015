"""A weight-free semantic stand-in: colour and local texture statistics around each track.

At each distinct query frame the frame is resized to ``work_side`` (longer side) and described per
pixel by, for every window size ``s`` in ``scales``:

- the mean and standard deviation of CIE Lab colour in the ``s x s`` window (6 values),
- a histogram of gradient orientations in the window, weighted by gradient magnitude and
  normalised to sum to 1 (``orientations`` values), plus the log of the mean gradient energy (1),

and by the Lab colour of the pixel itself (3). A track's feature is that description, sampled
bilinearly at its query-frame position: ``dim = 3 + len(scales) * (7 + orientations)``.
Box filters make this a few milliseconds per query frame. It carries no object semantics, but it
separates sky, road, water, foliage and most object surfaces, which is what the classifier's
feed-forward layers can use.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from moseg.io.contract import bilinear
from moseg.prep.frames import resize_longest


class AppearanceFeatures:
    name = "appearance"

    def __init__(
        self,
        scales: list[int] | tuple[int, ...] = (7, 15, 31),
        orientations: int = 8,
        work_side: int | None = 480,
    ):
        if not scales or min(scales) < 1 or orientations < 2:
            raise ValueError(
                f"need scales >= 1 and orientations >= 2, got {scales}, {orientations}"
            )
        self.scales = tuple(int(s) for s in scales)
        self.orientations = int(orientations)
        self.work_side = work_side
        self.dim = 3 + len(self.scales) * (7 + self.orientations)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scales": list(self.scales),
            "orientations": self.orientations,
            "work_side": self.work_side,
            "dim": self.dim,
        }

    def feature_map(self, frame: np.ndarray) -> np.ndarray:
        """``[h, w, dim] float32`` description of every pixel of ``frame`` at the working size."""
        img = resize_longest(frame, self.work_side).astype(np.float32) / 255.0
        lab = cv2.cvtColor(img, cv2.COLOR_RGB2Lab) * np.array(
            [1 / 100, 1 / 128, 1 / 128], np.float32
        )
        lab = lab.astype(np.float32)
        L = np.ascontiguousarray(lab[..., 0])
        gx, gy = cv2.Sobel(L, cv2.CV_32F, 1, 0), cv2.Sobel(L, cv2.CV_32F, 0, 1)
        mag = np.sqrt(gx * gx + gy * gy)
        # soft (linear) assignment of unsigned orientation to bins
        ang = (np.arctan2(gy, gx) % np.pi) / np.pi * self.orientations
        lo = np.floor(ang).astype(np.int64) % self.orientations
        frac = (ang - np.floor(ang)).astype(np.float32)
        hist = np.zeros((*L.shape, self.orientations), np.float32)
        rows, cols = np.indices(L.shape)
        hist[rows, cols, lo] += mag * (1 - frac)
        hist[rows, cols, (lo + 1) % self.orientations] += mag * frac
        lab_sq = lab * lab
        energy = mag * mag
        out = [lab]
        for s in self.scales:
            k = (s, s)
            mean = cv2.blur(lab, k)
            std = np.sqrt(np.maximum(cv2.blur(lab_sq, k) - mean * mean, 0))
            h = np.stack([cv2.blur(hist[..., i], k) for i in range(self.orientations)], axis=-1)
            h /= h.sum(axis=-1, keepdims=True) + 1e-6
            e = np.log1p(cv2.blur(energy, k) * 100.0)[..., None]
            out += [mean, std, h, e]
        return np.concatenate(out, axis=-1)

    def __call__(
        self, frames: np.ndarray, tracks: np.ndarray, query_frame: np.ndarray
    ) -> np.ndarray:
        """``[N, dim] float16``: each track's description at its query-frame position."""
        T, H, W = frames.shape[:3]
        out = np.zeros((len(query_frame), self.dim), np.float32)
        for q in np.unique(query_frame):
            sel = np.flatnonzero(query_frame == q)
            fmap = self.feature_map(frames[q])
            h, w = fmap.shape[:2]
            xy = tracks[sel, q]
            gx = (xy[:, 0] + 0.5) * (w / W) - 0.5  # pixel centres align as in cv2.resize
            gy = (xy[:, 1] + 0.5) * (h / H) - 0.5
            out[sel] = bilinear(fmap, gx, gy)
        return out.astype(np.float16)
