"""Pictures of a contract sequence: frames with tracks, masks and depth, for eyes, not tests."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from moseg.io import LABEL_MOVING, LABEL_STATIC, Sequence
from moseg.utils.atomic import atomic_path

# RGB
COLOR_MOVING = (255, 40, 40)
COLOR_STATIC = (40, 220, 60)
COLOR_UNKNOWN = (250, 220, 0)


def davis_palette() -> np.ndarray:
    """The DAVIS/PASCAL VOC colour map, [256, 3] uint8 RGB."""
    pal = np.zeros((256, 3), np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        pal[i] = (r, g, b)
    return pal


def draw_tracks(
    frame: np.ndarray,
    xy: np.ndarray,
    vis: np.ndarray,
    label: np.ndarray,
    trail: np.ndarray | None = None,
) -> np.ndarray:
    """Dots at ``xy [N, 2]`` where ``vis [N]``, coloured by ``label [N]``; optional ``trail
    [N, L, 2]`` of earlier positions drawn as lines. Returns a new RGB image."""
    img = frame.copy()
    colors = {LABEL_MOVING: COLOR_MOVING, LABEL_STATIC: COLOR_STATIC}
    for n in np.flatnonzero(vis):
        c = colors.get(int(label[n]), COLOR_UNKNOWN)
        if trail is not None:
            pts = np.round(trail[n]).astype(np.int32)
            cv2.polylines(img, [pts], False, c, 1, cv2.LINE_AA)
        cv2.circle(img, (int(round(xy[n, 0])), int(round(xy[n, 1]))), 1, c, -1, cv2.LINE_AA)
    return img


def sequence_sheet(
    seq: Sequence, frames: list[int] | None = None, max_tracks: int = 600, seed: int = 0
) -> np.ndarray:
    """A contact sheet: one column per frame; rows = tracks on the frame, masks, depth."""
    if seq.frames is None:
        raise ValueError(f"{seq.name}: the sequence stores no frames to draw on")
    T = seq.num_frames
    frames = frames if frames is not None else sorted({0, T // 3, 2 * T // 3, T - 1})
    rng = np.random.default_rng(seed)
    pick = rng.choice(seq.num_tracks, size=min(max_tracks, seq.num_tracks), replace=False)
    # moving tracks are few; always show them
    pick = np.union1d(pick, np.flatnonzero(seq.label == LABEL_MOVING)[:max_tracks])
    pal = davis_palette()
    cols = []
    for t in frames:
        lo = max(0, t - 4)
        tiles = [
            draw_tracks(
                seq.frames[t],
                seq.tracks[pick, t],
                seq.visibility[pick, t],
                seq.label[pick],
                trail=seq.tracks[pick, lo : t + 1],
            )
        ]
        if seq.masks is not None:
            tiles.append(pal[seq.masks[t]])
        if seq.depth is not None:
            d = (seq.depth[t].astype(np.float32) * 255).astype(np.uint8)
            d = cv2.resize(d, (seq.width, seq.height), interpolation=cv2.INTER_LINEAR)
            tiles.append(cv2.applyColorMap(d, cv2.COLORMAP_VIRIDIS)[..., ::-1])
        cols.append(np.concatenate([np.pad(x, ((2, 2), (2, 2), (0, 0))) for x in tiles], axis=0))
    return np.concatenate(cols, axis=1)


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB image atomically."""
    path = Path(path)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(rgb[..., ::-1]))
    if not ok:
        raise OSError(f"{path}: PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.tobytes())
    return path


def overlay_masks(frame: np.ndarray, labels: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """``frame [H, W, 3]`` RGB with each object of ``labels [H, W]`` (0 background) tinted in
    its DAVIS palette colour (``alpha`` opacity) and outlined. Returns a new image."""
    img = frame.astype(np.float32)
    pal = davis_palette()
    ids = [i for i in np.unique(labels) if i not in (0, 255)]
    for i in ids:
        m = labels == i
        img[m] = (1 - alpha) * img[m] + alpha * pal[i].astype(np.float32)
    out = np.clip(img, 0, 255).astype(np.uint8)
    for i in ids:
        m = (labels == i).astype(np.uint8)
        contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, tuple(int(c) for c in pal[i]), 2, cv2.LINE_AA)
    return out


def write_video(
    path: str | Path, frames: Iterable[np.ndarray], fps: float, size: tuple[int, int]
) -> Path:
    """Encode RGB ``frames`` (each ``[H, W, 3]`` with ``size`` = (H, W)) as H.264 mp4, atomically;
    frames are consumed one at a time (memory does not grow with length)."""
    import av

    path = Path(path)
    H, W = size
    with atomic_path(path) as tmp, av.open(str(tmp), mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height = W - W % 2, H - H % 2  # yuv420p needs even sides
        stream.pix_fmt = "yuv420p"
        for f in frames:
            f = np.ascontiguousarray(f[: stream.height, : stream.width])
            for pkt in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(pkt)
        for pkt in stream.encode():
            out.mux(pkt)
    return path
