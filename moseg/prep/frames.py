"""Reading a video (mp4/mov/avi/...) or a folder of frames into memory, with explicit sub-sampling.

Every choice that drops or changes frames (a start offset, a frame interval, a frame cap, a resize)
is logged and recorded in :meth:`Frames.provenance`, which the pipeline stores in the contract file:
nothing is skipped silently. Errors name the file that is wrong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".jp2"}
)
VIDEO_EXTS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


class FrameError(ValueError):
    """A video or frame file that cannot be used; the message names the file."""


@dataclass(frozen=True)
class FrameSpec:
    """Which frames to keep and at what size.

    ``interval``: keep every n-th frame; ``max_frames``: keep at most this many (after the
    interval); ``start``: first source frame; ``longest_side``: downscale so that the longer side
    is at most this (never upscale). The reference method's "efficiency mode" is ``interval`` >1
    plus a smaller ``longest_side``.
    """

    start: int = 0
    interval: int = 1
    max_frames: int | None = None
    longest_side: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or self.interval < 1:
            raise ValueError(f"need start >= 0 and interval >= 1, got {self}")
        if self.max_frames is not None and self.max_frames < 1:
            raise ValueError(f"max_frames must be >= 1 or null, got {self.max_frames}")
        if self.longest_side is not None and self.longest_side < 8:
            raise ValueError(f"longest_side must be >= 8 or null, got {self.longest_side}")

    @classmethod
    def from_dict(cls, d: Any) -> FrameSpec:
        return cls(**({} if d is None else dict(d)))

    def select(self, total: int) -> np.ndarray:
        """Source indices kept out of ``total`` frames."""
        idx = np.arange(self.start, total, self.interval)
        if self.max_frames is not None:
            idx = idx[: self.max_frames]
        return idx


@dataclass
class Frames:
    """Frames of one video as ``[T, H, W, 3] uint8`` RGB, plus where each one came from."""

    frames: np.ndarray
    fps: float
    path: str
    indices: np.ndarray  # [T] index of each kept frame in the source
    names: list[str]  # [T] file stem (folders) or zero-padded source index (videos)
    total_frames: int  # frames in the source
    original_size: tuple[int, int]  # (H, W) before any resize
    notes: list[str] = field(default_factory=list)  # everything dropped or changed, in words

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def provenance(self) -> dict[str, Any]:
        kept = self.indices
        contiguous = len(kept) == self.total_frames
        return {
            "path": self.path,
            "total_frames": self.total_frames,
            "kept_frames": int(len(kept)),
            "kept_indices": "all" if contiguous else _ranges(kept),
            "original_size": list(self.original_size),
            "size": list(self.size),
            "fps": self.fps,
            "notes": list(self.notes),
        }


def _ranges(idx: np.ndarray) -> str:
    """Compact text for a sorted index list: ``0-98:2,120`` (start-stop:step runs)."""
    idx = [int(i) for i in idx]
    if not idx:
        return ""
    out, i = [], 0
    while i < len(idx):
        j = i
        step = idx[i + 1] - idx[i] if i + 1 < len(idx) else 1
        while j + 1 < len(idx) and idx[j + 1] - idx[j] == step:
            j += 1
        if j == i:
            out.append(str(idx[i]))
        else:
            out.append(f"{idx[i]}-{idx[j]}" + (f":{step}" if step != 1 else ""))
        i = j + 1
    return ",".join(out)


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame2`` before ``frame10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def list_frame_files(folder: str | Path) -> tuple[list[Path], list[Path]]:
    """Image files in ``folder`` in natural order, and the other (ignored) files."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FrameError(f"{folder}: not a folder")
    images, other = [], []
    for p in folder.iterdir():
        if p.name.startswith(".") or p.is_dir():
            continue
        (images if p.suffix.lower() in IMAGE_EXTS else other).append(p)
    images.sort(key=lambda p: natural_key(p.name))
    if not images:
        raise FrameError(
            f"{folder}: no image files (looked for {', '.join(sorted(IMAGE_EXTS))})"
            + (f"; found only {', '.join(sorted(p.name for p in other)[:5])}" if other else "")
        )
    return images, sorted(other)


def read_image(path: str | Path) -> np.ndarray:
    """One image as ``[H, W, 3] uint8`` RGB (grey and RGBA converted, 16-bit scaled)."""
    path = Path(path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise FrameError(f"{path}: cannot be read as an image (corrupt or not an image)")
    if img.dtype == np.uint16:
        img = (img // 257).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise FrameError(f"{path}: unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def resize_longest(img: np.ndarray, longest_side: int | None) -> np.ndarray:
    """Downscale so the longer side is at most ``longest_side`` (area filter); never upscale.
    No limit when ``longest_side`` is None or 0."""
    if not longest_side:
        return img
    h, w = img.shape[:2]
    s = longest_side / max(h, w)
    if s >= 1:
        return img
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO_EXTS


def read_frames(path: str | Path, spec: FrameSpec | None = None, fps: float = 24.0) -> Frames:
    """Read a video file or a frame folder. ``fps`` is used for folders (they carry none)."""
    spec = spec or FrameSpec()
    path = Path(path)
    if not path.exists():
        raise FrameError(f"{path}: does not exist")
    if path.is_dir():
        return _read_folder(path, spec, fps)
    if path.suffix.lower() in IMAGE_EXTS:
        raise FrameError(f"{path}: is a single image; give the folder of frames instead")
    return _read_video(path, spec)


def _notes(spec: FrameSpec, total: int, kept: np.ndarray, size0, size1) -> list[str]:
    notes = []
    if spec.start:
        notes.append(f"skipped the first {min(spec.start, total)} frames (start={spec.start})")
    if spec.interval > 1:
        notes.append(f"kept every {spec.interval}th frame (interval={spec.interval})")
    by_interval = len(range(spec.start, total, spec.interval))
    if len(kept) < by_interval:
        notes.append(
            f"dropped the last {by_interval - len(kept)} selected frames "
            f"(max_frames={spec.max_frames})"
        )
    if tuple(size0) != tuple(size1):
        notes.append(
            f"resized {size0[1]}x{size0[0]} -> {size1[1]}x{size1[0]} "
            f"(longest_side={spec.longest_side})"
        )
    for n in notes:
        log.info("%s", n)
    return notes


def build_frames(
    read: Callable[[int], np.ndarray],
    names: list[str],
    spec: FrameSpec,
    fps: float,
    path: str,
    notes: list[str] | None = None,
) -> Frames:
    """The frames ``spec`` keeps out of ``len(names)`` source frames, resized as it says.

    ``read(i)`` gives source frame ``i`` as ``[H, W, 3] uint8`` RGB and ``names[i]`` names it (a
    file path, or any label) in errors and, by its stem, in :attr:`Frames.names`. Every drop or
    resize is noted after ``notes``."""
    total = len(names)
    kept = spec.select(total)
    if len(kept) == 0:
        raise FrameError(f"{path}: start={spec.start} is past its {total} frames")
    out: list[np.ndarray] = []
    size0: tuple[int, int] | None = None
    for i in kept:
        img = read(int(i))
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise FrameError(
                f"{names[i]}: expected an RGB uint8 image, got {img.shape} {img.dtype}"
            )
        if size0 is None:
            size0 = (int(img.shape[0]), int(img.shape[1]))
        elif img.shape[:2] != size0:
            raise FrameError(
                f"{names[i]}: frame is {img.shape[1]}x{img.shape[0]}, but "
                f"{Path(names[kept[0]]).name} is {size0[1]}x{size0[0]}; all frames of a video "
                "must have one size"
            )
        out.append(resize_longest(img, spec.longest_side))
    frames = np.stack(out)
    return Frames(
        frames=frames,
        fps=float(fps) / spec.interval,
        path=path,
        indices=kept,
        names=[Path(names[i]).stem for i in kept],
        total_frames=total,
        original_size=size0,
        notes=list(notes or []) + _notes(spec, total, kept, size0, frames.shape[1:3]),
    )


def _read_folder(folder: Path, spec: FrameSpec, fps: float) -> Frames:
    files, other = list_frame_files(folder)
    notes = []
    if other:
        msg = f"ignored {len(other)} non-image files in {folder}: " + ", ".join(
            p.name for p in other[:5]
        )
        log.warning("%s", msg)
        notes.append(msg)
    return build_frames(
        lambda i: read_image(files[i]), [str(f) for f in files], spec, fps, str(folder), notes
    )


def _read_video(path: Path, spec: FrameSpec) -> Frames:
    src = probe(path)
    out, idx = [], []
    for i, img in iter_frames(src, spec):
        out.append(img)
        idx.append(i)
    total = max(src.total_frames, (idx[-1] + 1) if idx else 0)
    if not out:
        raise FrameError(
            f"{path}: no frames decoded"
            + (f" (start={spec.start}, {total} frames)" if total else "")
        )
    kept = np.asarray(idx)
    frames = np.stack(out)
    notes = _notes(spec, total, kept, src.size, frames.shape[1:3])
    return Frames(
        frames=frames,
        fps=src.fps / spec.interval,
        path=str(path),
        indices=kept,
        names=[src.name(i) for i in kept],
        total_frames=total,
        original_size=src.size,
        notes=notes,
    )


# ----------------------------------------------------------------------------------------------
# Streaming: frames one at a time, for videos longer than memory
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """What :func:`probe` learns about a video file or frame folder without decoding it all:
    ``total_frames`` (a video's from its container: the stream's frame count, else its packets),
    ``fps``, the frames' ``size`` (H, W) and, for folders, the image ``files`` in order."""

    path: str
    total_frames: int
    fps: float
    size: tuple[int, int]
    files: tuple[str, ...] | None = None  # None for a video file

    @property
    def is_video(self) -> bool:
        return self.files is None

    def name(self, i: int) -> str:
        """Name of source frame ``i``: the file stem (folders) or the zero-padded index."""
        if self.files is not None:
            return Path(self.files[i]).stem
        return f"{i:0{max(5, len(str(max(self.total_frames - 1, 0))))}d}"


def image_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image file from its header (PIL reads no pixels); a format PIL does not
    know is decoded in full."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            w, h = im.size
        return int(h), int(w)
    except (UnidentifiedImageError, OSError, ValueError):
        return read_image(path).shape[:2]


def check_frame_sizes(files: list[Path], size: tuple[int, int]) -> None:
    """Every frame file is ``size`` (H, W), from the headers, before any frame is processed;
    else a :class:`FrameError` naming the first file of another size."""
    for f in files[1:]:
        hw = image_size(f)
        if hw != tuple(size):
            raise FrameError(
                f"{f}: frame is {hw[1]}x{hw[0]}, but the first frame {files[0].name} is "
                f"{size[1]}x{size[0]}; all frames must have one size"
            )


def probe(path: str | Path, fps: float = 24.0) -> Source:
    """Open a video file or a frame folder and check it can be used; ``fps`` is for folders.
    Raises :class:`FrameError` naming the path (missing, not a video, no frames, frames of
    another size than the first: every image's header is read here, ...)."""
    path = Path(path)
    if not path.exists():
        raise FrameError(f"{path}: does not exist")
    if path.is_dir():
        files, other = list_frame_files(path)
        stems = [f.stem for f in files]
        if len(set(stems)) < len(stems):
            dup = sorted({s for s in stems if stems.count(s) > 1})
            raise FrameError(
                f"{path}: several images share the name {dup[0]!r} (e.g. .jpg and .png); "
                "frames are named by their file name without extension, so keep one"
            )
        if other:
            log.warning("ignored %d non-image files in %s", len(other), path)
        first = read_image(files[0])
        check_frame_sizes(files, first.shape[:2])
        return Source(str(path), len(files), float(fps), first.shape[:2], tuple(map(str, files)))
    if path.suffix.lower() in IMAGE_EXTS:
        raise FrameError(f"{path}: is a single image; give the folder of frames instead")
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as e:
        raise FrameError(f"{path}: cannot be opened as a video ({e})") from e
    with container:
        if not container.streams.video:
            raise FrameError(f"{path}: has no video stream")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        total = int(stream.frames or 0)
        try:
            if total <= 0:
                total = sum(1 for pkt in container.demux(stream) if pkt.size)
        except av.error.FFmpegError as e:
            raise FrameError(f"{path}: cannot be read as a video ({e})") from e
        size = (int(stream.codec_context.height), int(stream.codec_context.width))
    if total <= 0 or min(size) <= 0:
        raise FrameError(f"{path}: the video has no frames")
    return Source(str(path), total, float(rate) if rate else 24.0, size)


def iter_frames(src: Source, spec: FrameSpec | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """``(source index, [H', W', 3] uint8 RGB)`` for every frame ``spec`` keeps, resized as it
    says, one at a time (memory does not grow with the video's length). A frame of another size
    than the first is an error naming it. A video that holds fewer frames than its container
    announced simply ends early (the caller sees the last index)."""
    spec = spec or FrameSpec()
    keep = spec.select(src.total_frames)
    if len(keep) == 0:
        raise FrameError(f"{src.path}: start={spec.start} is past its {src.total_frames} frames")
    wanted = set(keep.tolist())
    last = int(keep[-1])

    def checked(i: int, img: np.ndarray, where: str) -> np.ndarray:
        if img.shape[:2] != src.size:
            raise FrameError(
                f"{where}: frame is {img.shape[1]}x{img.shape[0]}, but the first frame of "
                f"{src.path} is {src.size[1]}x{src.size[0]}; all frames must have one size"
            )
        return resize_longest(img, spec.longest_side)

    if src.files is not None:
        for i in keep:
            yield int(i), checked(int(i), read_image(src.files[i]), src.files[i])
        return
    import av

    with av.open(src.path) as container:
        stream = container.streams.video[0]
        i = -1
        try:
            for i, frame in enumerate(container.decode(stream)):
                if i > last:
                    break
                if i in wanted:
                    yield i, checked(i, frame.to_ndarray(format="rgb24"), f"{src.path} frame {i}")
        except av.error.FFmpegError as e:
            raise FrameError(f"{src.path}: decoding failed after {i + 1} frames ({e})") from e
    if i < last:
        log.warning(
            "%s: the video ended after %d frames, its container announced %d",
            src.path,
            i + 1,
            src.total_frames,
        )
