"""Clicks and boxes that pick the objects of a video (``moseg segment --point/--box/--object``).

Text forms (coordinates in pixels of the original video, frame numbers 0-based in the source):

- ``X,Y`` a positive click on frame 0; ``X,Y@F`` on frame F; ``X,Y:neg`` (or ``@F:neg``) a
  negative click (this is not the object); ``:pos`` is accepted for symmetry.
- ``X0,Y0,X1,Y1`` a box on frame 0 (corners in any order); ``X0,Y0,X1,Y1@F`` on frame F.

Prompts belong to an object (``obj``, 1..254); ``--object ID`` sets it for the prompts that
follow. Several prompts per object, on several frames, are allowed (a later prompt corrects a
drifting mask). The algorithms get them per chunk as :class:`FramePrompt` (one object, one frame,
chunk-local frame index, working-resolution pixels).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

MAX_OBJECT_ID = 254  # ids go into uint8 masks; 255 is DAVIS's "void"


class PromptError(ValueError):
    """A prompt that cannot be used; the message quotes it and says what is wrong."""


@dataclass(frozen=True)
class Point:
    """A click at ``(x, y)`` px on source frame ``frame``; ``positive=False``: a negative one."""

    x: float
    y: float
    frame: int = 0
    positive: bool = True
    obj: int = 1

    def describe(self) -> str:
        sign = "" if self.positive else ":neg"
        return f"point {self.x:g},{self.y:g}@{self.frame}{sign} (object {self.obj})"


@dataclass(frozen=True)
class Box:
    """A box ``x0 <= x1``, ``y0 <= y1`` px on source frame ``frame``."""

    x0: float
    y0: float
    x1: float
    y1: float
    frame: int = 0
    obj: int = 1

    def describe(self) -> str:
        return (
            f"box {self.x0:g},{self.y0:g},{self.x1:g},{self.y1:g}@{self.frame} (object {self.obj})"
        )


Prompt = Point | Box

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_POINT = re.compile(rf"^\s*({_NUM})\s*,\s*({_NUM})\s*(?:@\s*(\d+))?\s*(?::\s*(neg|pos))?\s*$")
_BOX = re.compile(
    rf"^\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*,\s*({_NUM})\s*(?:@\s*(\d+))?\s*$"
)


def parse_point(text: str, obj: int = 1) -> Point:
    """``"X,Y[@FRAME][:neg]"`` -> :class:`Point` (see the module docstring)."""
    m = _POINT.match(str(text))
    if not m:
        raise PromptError(
            f"--point {text!r}: expected X,Y[@FRAME][:neg], e.g. 320,180 or 320,180@12:neg"
        )
    x, y, f, sign = m.groups()
    return Point(float(x), float(y), int(f or 0), sign != "neg", check_object_id(obj))


def parse_box(text: str, obj: int = 1) -> Box:
    """``"X0,Y0,X1,Y1[@FRAME]"`` -> :class:`Box` with sorted corners."""
    m = _BOX.match(str(text))
    if not m:
        raise PromptError(f"--box {text!r}: expected X0,Y0,X1,Y1[@FRAME], e.g. 100,80,300,260@0")
    x0, y0, x1, y1 = (float(v) for v in m.groups()[:4])
    if x0 == x1 or y0 == y1:
        raise PromptError(f"--box {text!r}: the box has no area")
    f = int(m.group(5) or 0)
    return Box(min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1), f, check_object_id(obj))


def check_object_id(obj: int | str) -> int:
    try:
        i = int(obj)
    except (TypeError, ValueError):
        raise PromptError(f"--object {obj!r}: expected an integer id 1..{MAX_OBJECT_ID}") from None
    if not 1 <= i <= MAX_OBJECT_ID:
        raise PromptError(f"--object {obj}: object ids must be 1..{MAX_OBJECT_ID}")
    return i


def as_prompts(
    items: Iterable[Prompt | str | Sequence[float]] | None, obj: int = 1
) -> list[Prompt]:
    """Prompts from the Python API: :class:`Point`/:class:`Box` objects, their text forms (a
    string with 4 numbers is a box), or tuples ``(x, y)``, ``(x, y, frame)``,
    ``(x0, y0, x1, y1)`` (given ``obj`` unless they carry one)."""
    out: list[Prompt] = []
    for it in items or []:
        if isinstance(it, Point | Box):
            out.append(it)
        elif isinstance(it, str):
            n = len(re.findall(_NUM, it.split("@")[0]))
            out.append(parse_box(it, obj) if n == 4 else parse_point(it, obj))
        else:
            v = [float(a) for a in it]
            if len(v) in (2, 3):
                out.append(Point(v[0], v[1], int(v[2]) if len(v) == 3 else 0, True, obj))
            elif len(v) == 4:
                out.append(parse_box(",".join(f"{a:g}" for a in v), obj))
            else:
                raise PromptError(f"prompt {it!r}: give (x, y), (x, y, frame) or a 4-number box")
    return out


def check_prompts(
    prompts: Sequence[Prompt], size: tuple[int, int], total_frames: int, where: str
) -> None:
    """Every prompt inside the ``size`` (H, W) frame and on one of ``total_frames`` frames, and
    every object with something positive; raises :class:`PromptError` naming the prompt and
    ``where`` (the video)."""
    H, W = size
    for p in prompts:
        if not 0 <= p.frame < total_frames:
            raise PromptError(
                f"{p.describe()}: frame {p.frame} is past the end of {where} "
                f"({total_frames} frames, 0..{total_frames - 1})"
            )
        xs, ys = ((p.x,), (p.y,)) if isinstance(p, Point) else ((p.x0, p.x1), (p.y0, p.y1))
        if any(not 0 <= x <= W - 1 for x in xs) or any(not 0 <= y <= H - 1 for y in ys):
            raise PromptError(
                f"{p.describe()}: outside the {W}x{H} frame of {where} "
                f"(x in 0..{W - 1}, y in 0..{H - 1})"
            )
    for obj in sorted({p.obj for p in prompts}):
        mine = [p for p in prompts if p.obj == obj]
        if not any(isinstance(p, Box) or p.positive for p in mine):
            raise PromptError(
                f"object {obj} has only negative clicks; give a positive click or a box too"
            )


@dataclass
class FramePrompt:
    """One object's prompts on one frame, as an algorithm gets them: chunk-local ``frame``,
    working-resolution pixels. ``labels`` 1 positive, 0 negative; ``box`` ``[4]`` or None."""

    obj: int
    frame: int
    points: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    box: np.ndarray | None = None

    @property
    def positive(self) -> np.ndarray:
        return self.points[self.labels == 1]

    @property
    def negative(self) -> np.ndarray:
        return self.points[self.labels == 0]


def frame_prompts(
    prompts: Sequence[Prompt], local: dict[int, int], scale: tuple[float, float]
) -> list[FramePrompt]:
    """The prompts on the frames of one chunk: ``local`` maps source frame numbers to chunk-local
    indices (frames not in it are left for other chunks); ``scale`` = (sx, sy) from original to
    working pixels (pixel centres stay centres). Several boxes of one object on one frame: the
    last one wins (SAM2 takes one box per frame and object)."""
    sx, sy = scale
    grouped: dict[tuple[int, int], FramePrompt] = {}
    for p in prompts:
        if p.frame not in local:
            continue
        key = (p.obj, local[p.frame])
        fp = grouped.setdefault(key, FramePrompt(p.obj, local[p.frame]))
        if isinstance(p, Point):
            xy = np.array([[(p.x + 0.5) * sx - 0.5, (p.y + 0.5) * sy - 0.5]], np.float32)
            fp.points = np.concatenate([fp.points, xy])
            fp.labels = np.concatenate([fp.labels, np.array([int(p.positive)], np.int32)])
        else:
            fp.box = np.array(
                [p.x0 * sx, p.y0 * sy, (p.x1 + 1) * sx - 1, (p.y1 + 1) * sy - 1], np.float32
            )
    return sorted(grouped.values(), key=lambda f: (f.frame, f.obj))


def interior_point(mask: np.ndarray) -> tuple[float, float]:
    """``(x, y)`` px of the pixel of ``mask [H, W]`` farthest from its boundary (the usual
    simulated click: a user clicks well inside the object). Raises ValueError on an empty mask."""
    import cv2

    m = np.pad(np.asarray(mask) > 0, 1).astype(np.uint8)
    if not m.any():
        raise ValueError("interior_point: the mask is empty")
    dist = cv2.distanceTransform(m, cv2.DIST_L2, 5)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(dist)), dist.shape)
    return float(x), float(y)
