"""The Python API: ``moseg.segment(video, ...)`` -> :class:`SegmentResult` (masks per frame per
object), the same run as ``moseg segment`` (see :mod:`moseg.segmentation.run`).

    import moseg
    res = moseg.segment("clip.mp4", out="clip-seg")                 # every moving object
    res = moseg.segment("frames/", points=["320,180"])              # one click on frame 0
    res = moseg.segment("clip.mp4", prompts={1: ["320,180", "300,200:neg"], 2: ["10,10,90,80@5"]})
    for name, objs in res:        # objs: {object id: bool mask [H, W]}
        ...
    res.labels(0)                 # [H, W] uint8 label map of the first frame
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moseg.inference.masks import read_mask_png
from moseg.segmentation.prompts import Box, Point, Prompt, as_prompts

PromptLike = Prompt | str | Sequence[float]


@dataclass
class SegmentResult:
    """A finished segmentation in ``out``; masks are read from ``out/masks`` when asked for, so
    a long video does not have to fit in memory."""

    out: Path
    info: dict[str, Any]  # the content of objects.json

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    @property
    def names(self) -> list[str]:
        """Frame names (``masks/<name>.png``), in order."""
        return list(self.info["frame_names"])

    @property
    def objects(self) -> dict[int, dict[str, Any]]:
        """Per object id: frames present, area and bounding box (x0, y0, x1, y1) per frame."""
        return {int(o["id"]): o for o in self.info["objects"]}

    @property
    def method(self) -> str:
        """``sam2`` or ``weight_free``: the path that made the masks."""
        return str(self.info["method"])

    @property
    def mode(self) -> str:
        return str(self.info["mode"])

    @property
    def overlay(self) -> Path | None:
        p = self.out / "overlay.mp4"
        return p if p.is_file() else None

    def __len__(self) -> int:
        return len(self.info["frame_names"])

    def _name(self, frame: int | str) -> str:
        if isinstance(frame, str):
            if frame not in self.info["frame_names"]:
                raise KeyError(f"no frame named {frame!r} in {self.out}")
            return frame
        return self.info["frame_names"][frame]

    def labels(self, frame: int | str) -> np.ndarray:
        """``[H, W] uint8`` label map (0 background, else the object id) of a frame, by
        position or name."""
        return read_mask_png(self.out / "masks" / f"{self._name(frame)}.png")

    def __getitem__(self, frame: int | str) -> dict[int, np.ndarray]:
        """``{object id: bool mask [H, W]}`` of the objects present in a frame."""
        m = self.labels(frame)
        return {int(i): m == i for i in np.unique(m) if i}

    def __iter__(self) -> Iterator[tuple[str, dict[int, np.ndarray]]]:
        for i, name in enumerate(self.info["frame_names"]):
            yield name, self[i]

    def to_array(self) -> np.ndarray:
        """All label maps as ``[T, H, W] uint8`` (memory: T x H x W bytes)."""
        return np.stack([self.labels(i) for i in range(len(self))])


def collect_prompts(
    points: Iterable[PromptLike] | None = None,
    boxes: Iterable[PromptLike] | None = None,
    prompts: Mapping[int, Iterable[PromptLike]] | Iterable[Prompt] | None = None,
) -> list[Prompt]:
    """``points`` and ``boxes`` (object 1 unless they are :class:`Point`/:class:`Box` with
    their own ``obj``) plus ``prompts`` (``{object id: [prompts]}`` or a list of Point/Box)."""
    pts, bxs = as_prompts(points), as_prompts(boxes)
    for p in bxs:
        if not isinstance(p, Box):
            raise ValueError(f"boxes: {p.describe()} is not a box (give X0,Y0,X1,Y1)")
    for p in pts:
        if not isinstance(p, Point):
            raise ValueError(f"points: {p.describe()} is not a point (give X,Y)")
    out = pts + bxs
    if isinstance(prompts, Mapping):
        for obj, items in prompts.items():
            out += as_prompts(items, obj=int(obj))
    elif prompts is not None:
        out += as_prompts(prompts)
    return out


def segment(
    video: str | Path,
    out: str | Path | None = None,
    *,
    points: Iterable[PromptLike] | None = None,
    boxes: Iterable[PromptLike] | None = None,
    prompts: Mapping[int, Iterable[PromptLike]] | Iterable[Prompt] | None = None,
    densify: str = "weight_free",
    ckpt: str | Path | None = "auto",
    overrides: Sequence[str] = (),
    overwrite: bool = False,
    progress: bool | None = None,
) -> SegmentResult:
    """Segment ``video`` (a video file or a folder of frames) into ``out`` (a new temporary
    folder when None) and return the result.

    No prompts: every moving object. ``points`` (``"X,Y[@F][:neg]"``, ``(x, y)``, ``(x, y,
    frame)`` or :class:`Point`), ``boxes`` (``"X0,Y0,X1,Y1[@F]"``, 4-tuples or :class:`Box`)
    and ``prompts`` (``{object id: [...]}``) pick objects instead. ``densify``: weight_free
    | sam2 (spelled as in evaluate.py; ``densify.checkpoint=PATH`` among ``overrides``).
    ``ckpt``: classifier checkpoint (auto: the shipped one). ``overrides``: any ``key=value``
    of moseg/conf/segment.yaml. A rerun into the same ``out`` resumes (or returns at once
    when finished)."""
    from moseg.config import compose
    from moseg.segmentation.run import plan, run

    plist = collect_prompts(points, boxes, prompts)
    ov = [f"densify={densify}", *overrides]
    cfg = compose("segment", ov)
    cfg.ckpt = None if ckpt is None else str(ckpt)
    cfg.overwrite = bool(overwrite)
    if progress is not None:
        cfg.progress = bool(progress)
    job = plan(cfg, video, out or ".", plist)  # checks everything; writes nothing
    job.out = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="moseg-segment-"))
    info = run(job)
    return SegmentResult(job.out, info)
