"""DAVIS-like extras for the synthetic videos of :mod:`moseg.datasets.synthetic_video`.

The procedural scenes have rigid, textured planes moving on their own paths. The DAVIS sequences
the shipped classifier fails on differ in ways these extras add to a scene, each with its own
probability (all off by default):

- ``follow_prob``: the camera follows a moving object. The object keeps a nearly fixed place in
  the image (it moves through the world with the camera), so the background flows past it and
  the object's own image motion is small (dog, drift, motocross, parkour).
- ``limb_prob``: moving objects get 1-4 limbs that swing about a joint on their outline, so
  parts of one object move differently (people, animals, riders).
- ``water_prob``: a static region whose texture changes every frame (ripples moving in two
  directions, a moving wave band, glints that flicker). It never enters the masks: motion that
  belongs to no object is not a moving object (blackswan, boat, kite-surf).
- ``spray_prob``: puffs of spray or smoke left along a moving object's path. Each puff stays
  where it was left, grows and churns; it is not part of the object (drift smoke, surf spray).
- ``texture_root``: a DAVIS-layout folder whose frames lend real textures. With
  ``real_background_prob`` the background plane shows a crop of a real frame (sky, foliage,
  road, low texture), with ``real_object_prob`` an object shows a real object cut out with its
  mask (real shapes and appearance; as a static object it is a hard negative). Use training
  sequences only (DAVIS2016_train), never an evaluation set.

:func:`add_extras` changes a scene from :func:`moseg.datasets.synthetic.build_scene` in place,
drawing from its own generator, so a clip's base scene is the same with and without extras.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from moseg.datasets.synthetic import (
    Camera,
    Layer,
    Scene,
    _bg_depth_at,
    _noise,
    make_shape,
    make_texture,
)

RANGES = (
    "follow_speed_px",
    "follow_size_px",
    "follow_wobble_px",
    "limbs",
    "limb_swing_deg",
    "limb_cycles",
    "water_px",
    "spray_puffs",
)
PROBS = (
    "follow_prob",
    "limb_prob",
    "water_prob",
    "spray_prob",
    "real_background_prob",
    "real_object_prob",
)


@dataclass
class Extras:
    """What :func:`add_extras` adds (module docstring). Ranges are (low, high), drawn per use."""

    follow_prob: float = 0.0
    follow_speed_px: tuple[float, float] = (0.0, 2.5)  # the followed object's image speed
    follow_size_px: tuple[float, float] = (140.0, 360.0)  # its size in the image (DAVIS-like)
    follow_wobble_px: tuple[float, float] = (0.0, 10.0)  # amplitude of its sway in the image
    limb_prob: float = 0.0
    limbs: tuple[int, int] = (1, 4)
    limb_swing_deg: tuple[float, float] = (15.0, 50.0)  # swing amplitude about the joint
    limb_cycles: tuple[float, float] = (0.5, 3.0)  # swings over the clip
    water_prob: float = 0.0
    water_px: tuple[float, float] = (250.0, 700.0)  # width of the water region in the image
    spray_prob: float = 0.0
    spray_puffs: tuple[int, int] = (3, 8)
    texture_root: str | None = None
    real_background_prob: float = 0.0
    real_object_prob: float = 0.0

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Extras:
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown synthetic_video extras: {sorted(unknown)}")
        for k in RANGES:
            if k in d:
                lo, hi = d[k]
                if lo > hi:
                    raise ValueError(f"extras.{k}: low {lo} is above high {hi}")
                d[k] = (lo, hi)
        for k in PROBS:
            if k in d and not 0.0 <= float(d[k]) <= 1.0:
                raise ValueError(f"extras.{k} must lie in [0, 1], not {d[k]}")
        out = cls(**d)
        real = out.real_background_prob > 0 or out.real_object_prob > 0
        if real and not out.texture_root:
            raise ValueError("extras.real_*_prob needs extras.texture_root (a DAVIS-layout folder)")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


# ----------------------------------------------------------------------------------------------
# Real textures
# ----------------------------------------------------------------------------------------------
class TexturePool:
    """Frames (and their masks) of a DAVIS-layout folder, read on demand."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        frames = self.root / "JPEGImages" / "480p"
        if not frames.is_dir():
            raise FileNotFoundError(f"{frames}: extras.texture_root needs a DAVIS layout")
        self.frames = sorted(frames.glob("*/*.jpg"))
        if not self.frames:
            raise FileNotFoundError(f"{frames}: no frames (*/*.jpg)")

    def _read(self, path: Path) -> np.ndarray:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:
            raise OSError(f"{path}: cannot read the image")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)

    def _mask(self, frame: Path) -> np.ndarray | None:
        p = self.root / "Annotations" / "480p" / frame.parent.name / (frame.stem + ".png")
        if not p.is_file():
            return None
        m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
        return None if m is None else m > 0

    def crop(self, rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        """A random crop of a random frame, with the aspect of ``h x w``, resized to it."""
        img = self._read(self.frames[int(rng.integers(len(self.frames)))])
        ih, iw = img.shape[:2]
        aspect = w / h
        area = rng.uniform(0.35, 1.0) * ih * iw
        ch = int(min(ih, math.sqrt(area / aspect)))
        cw = int(min(iw, ch * aspect))
        ch = max(8, int(cw / aspect)) if cw < ch * aspect else max(8, ch)
        y0 = int(rng.integers(0, ih - min(ih, ch) + 1))
        x0 = int(rng.integers(0, iw - min(iw, cw) + 1))
        out = img[y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            out = out[:, ::-1]
        interp = cv2.INTER_AREA if w < cw else cv2.INTER_CUBIC
        return cv2.resize(np.ascontiguousarray(out), (w, h), interpolation=interp)

    def cutout(self, rng: np.random.Generator, max_side: int) -> np.ndarray | None:
        """RGBA [h, w, 4] of the largest masked region of a random frame, or None (no mask)."""
        for _ in range(8):
            path = self.frames[int(rng.integers(len(self.frames)))]
            m = self._mask(path)
            if m is None or m.sum() < 1500:
                continue
            n, lab, stats, _ = cv2.connectedComponentsWithStats(m.astype(np.uint8), 8)
            k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
            x, y, bw, bh = (int(v) for v in stats[k, :4])
            img = self._read(path)[y : y + bh, x : x + bw]
            alpha = np.where(lab[y : y + bh, x : x + bw] == k, 255, 0).astype(np.uint8)
            rgba = np.concatenate([img, alpha[..., None]], axis=2)
            if rng.random() < 0.5:
                rgba = rgba[:, ::-1]
            s = max_side / max(bh, bw)
            size = (max(4, round(bw * s)), max(4, round(bh * s)))
            rgba = cv2.resize(np.ascontiguousarray(rgba), size, interpolation=cv2.INTER_AREA)
            rgba[..., 3] = np.where(rgba[..., 3] > 127, 255, 0)
            return rgba
        return None


# ----------------------------------------------------------------------------------------------
# Geometry helpers
# ----------------------------------------------------------------------------------------------
def _centre(layer: Layer) -> np.ndarray:
    """[T, 3] world position of the texture's centre."""
    h, w = layer.texture.shape[-3:-1]
    M = layer.M
    return M[:, :, 2] + (w - 1) / 2 * M[:, :, 0] + (h - 1) / 2 * M[:, :, 1]


def _with_origin(M: np.ndarray, centre: np.ndarray, h: int, w: int) -> np.ndarray:
    out = M.copy()
    out[:, :, 2] = centre - (w - 1) / 2 * M[:, :, 0] - (h - 1) / 2 * M[:, :, 1]
    return out


def _cam_depth(cam: Camera, t: int, p: np.ndarray) -> float:
    return float((cam.R[t] @ (p - cam.C[t]))[2])


def _camera_axes(cam: Camera, t: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World directions of the camera's forward, right and down axes at frame ``t``."""
    fwd = cam.R[t].T @ np.array([0.0, 0.0, 1.0])
    right = cam.R[t].T @ np.array([1.0, 0.0, 0.0])
    return fwd, right, np.cross(fwd, right)


def retexture(layer: Layer, tex: np.ndarray) -> None:
    """Give ``layer`` a new texture that spans the same world size along its longer side."""
    h, w = layer.texture.shape[-3:-1]
    nh, nw = tex.shape[-3:-1]
    centre = _centre(layer)
    M = layer.M.copy()
    M[:, :, :2] *= max(h, w) / max(nh, nw)
    layer.texture = tex
    layer.M = _with_origin(M, centre, nh, nw)
    layer.__dict__.pop("plane", None)  # cached plane of the old pose


def _hue_of(tex: np.ndarray) -> float:
    rgb = tex[..., :3].reshape(-1, 3)
    if tex.shape[-1] == 4:
        rgb = rgb[tex[..., 3].reshape(-1) > 127] if (tex[..., 3] > 127).any() else rgb
    mean = rgb.mean(0).astype(np.uint8)[None, None]
    return float(cv2.cvtColor(mean, cv2.COLOR_RGB2HSV)[0, 0, 0])


# ----------------------------------------------------------------------------------------------
# Extras
# ----------------------------------------------------------------------------------------------
def follow(scene: Scene, rng: np.random.Generator, idx: int, ex: Extras, hw: tuple[int, int]):
    """Move layer ``idx`` with the camera: a nearly fixed, slowly drifting place in the image."""
    cam, layer = scene.cam, scene.layers[idx]
    H, W = hw
    T = cam.K.shape[0]
    mid = T // 2
    h, w = layer.texture.shape[-3:-1]
    z0 = _cam_depth(cam, mid, _centre(layer)[mid])
    size_px = max(h, w) * float(np.linalg.norm(layer.M[mid, :, 0])) * cam.K[mid, 0, 0] / z0
    M = layer.M.copy()
    M[:, :, :2] *= rng.uniform(*ex.follow_size_px) / size_px
    t = np.arange(T) - mid
    speed = rng.uniform(*ex.follow_speed_px)
    heading = rng.uniform(0, 2 * np.pi)
    wobble = rng.uniform(*ex.follow_wobble_px, 2)
    period = rng.uniform(12, 40, 2)
    phase = rng.uniform(0, 2 * np.pi, 2)
    xs = rng.uniform(0.3, 0.7) * W + speed * math.cos(heading) * t
    ys = rng.uniform(0.35, 0.65) * H + speed * math.sin(heading) * t
    xs = xs + wobble[0] * np.sin(2 * np.pi * t / period[0] + phase[0])
    ys = ys + wobble[1] * np.sin(2 * np.pi * t / period[1] + phase[1])
    zs = z0 * rng.uniform(0.8, 1.25) ** (t / max(1, T - 1))
    bg = scene.layers[0]
    centre = np.zeros((T, 3))
    for i in range(T):
        zb = _bg_depth_at(bg, cam, i, xs[i], ys[i])
        z = min(zs[i], 0.8 * zb) if np.isfinite(zb) else zs[i]
        centre[i] = cam.backproject(i, xs[i], ys[i], max(z, 1.0))
    layer.M = _with_origin(M, centre, h, w)
    layer.__dict__.pop("plane", None)


def add_limbs(scene: Scene, rng: np.random.Generator, idx: int, ex: Extras) -> None:
    """1-4 limbs (moving layers) that swing about joints on layer ``idx``'s outline."""
    cam, body = scene.cam, scene.layers[idx]
    T = cam.K.shape[0]
    tex = body.texture
    if tex.ndim != 3 or tex.shape[2] != 4:
        return
    h, w = tex.shape[:2]
    alpha = (tex[..., 3] > 127).astype(np.uint8)
    edge = alpha - cv2.erode(alpha, np.ones((3, 3), np.uint8))
    jy, jx = np.nonzero(edge)
    if len(jx) == 0:
        return
    e1, e2, origin = body.M[:, :, 0], body.M[:, :, 1], body.M[:, :, 2]
    ang = np.arctan2(e1[:, 1], e1[:, 0])
    s = np.linalg.norm(e1, axis=1)
    fwd = _camera_axes(cam, T // 2)[0]
    depth = _cam_depth(cam, T // 2, _centre(body)[T // 2])
    hue = _hue_of(tex)
    times = np.arange(T) / max(1, T - 1)
    for _ in range(int(rng.integers(ex.limbs[0], ex.limbs[1] + 1))):
        k = int(rng.integers(len(jx)))
        ju, jv = float(jx[k]), float(jy[k])
        base = math.atan2(jv - (h - 1) / 2, ju - (w - 1) / 2)
        length = int(rng.uniform(0.4, 0.9) * max(h, w))
        width = max(4, int(rng.uniform(0.12, 0.25) * min(h, w)))
        ltex = make_texture(rng, width, length, hue)
        lalpha = np.zeros((width, length), np.uint8)
        r = width // 2
        cv2.rectangle(lalpha, (r, 0), (length - 1 - r, width - 1), 255, -1)
        cv2.circle(lalpha, (length - 1 - r, r), r, 255, -1)
        cv2.circle(lalpha, (r, r), r, 255, -1)
        amp = math.radians(rng.uniform(*ex.limb_swing_deg))
        cycles = rng.uniform(*ex.limb_cycles)
        phi = ang + base + amp * np.sin(2 * np.pi * cycles * times + rng.uniform(0, 2 * np.pi))
        joint = origin + ju * e1 + jv * e2
        le1 = np.stack([np.cos(phi), np.sin(phi), np.zeros(T)], axis=1) * s[:, None]
        le2 = np.stack([-np.sin(phi), np.cos(phi), np.zeros(T)], axis=1) * s[:, None]
        inset = 0.15 * length
        sign = 1.0 if rng.random() < 0.5 else -1.0  # behind or in front of the body
        lorigin = joint - inset * le1 - (width - 1) / 2 * le2 + sign * 0.01 * depth * fwd
        M = np.stack([le1, le2, lorigin], axis=2)
        rgba = np.concatenate([ltex, lalpha[..., None]], axis=2)
        scene.layers.append(Layer(len(scene.layers), body.cls, True, rgba, M))


def _animated(rng: np.random.Generator, T: int, h: int, w: int, kind: str) -> np.ndarray:
    """[T, h, w, 3] uint8 churning texture: two noise fields drifting apart, a travelling wave
    band, fresh fine noise and glints every frame (``kind``: water or spray)."""
    f1, f2 = _noise(rng, 2 * h, 2 * w), _noise(rng, 2 * h, 2 * w)
    v1, v2 = rng.uniform(-3, 3, 2), rng.uniform(-3, 3, 2)
    lam, omega = rng.uniform(8, 30), rng.uniform(0.05, 0.3)
    wave_dir = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    proj = xx * math.cos(wave_dir) + yy * math.sin(wave_dir)
    if kind == "water":
        hue = rng.uniform(80, 115) if rng.random() < 0.8 else rng.uniform(10, 30)
        c0 = cv2.cvtColor(
            np.uint8([[[hue, rng.uniform(40, 200), rng.uniform(30, 120)]]]), cv2.COLOR_HSV2RGB
        )[0, 0].astype(np.float32)
        c1 = np.minimum(255, c0 * rng.uniform(1.6, 2.6) + 20)
    else:
        g = rng.uniform(170, 235)
        c0 = np.float32([g, g, g]) * np.float32(rng.uniform(0.8, 1.0, 3))
        c1 = np.float32([255, 255, 255])
    out = np.zeros((T, h, w, 3), np.uint8)
    for t in range(T):
        a = np.roll(f1, (int(v1[1] * t), int(v1[0] * t)), axis=(0, 1))[:h, :w]
        b = np.roll(f2, (int(v2[1] * t), int(v2[0] * t)), axis=(0, 1))[:h, :w]
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * proj / lam - omega * 2 * np.pi * t)
        fine = _noise(rng, h, w, octaves=2)
        n = 0.35 * a + 0.25 * b + 0.2 * wave + 0.2 * fine
        n = np.clip((n - n.mean()) * 2.0 + 0.5, 0, 1)[..., None]
        img = c0 * (1 - n) + c1 * n
        glints = rng.random((h, w)) < 0.003
        img[glints] = 255
        out[t] = np.clip(img, 0, 255).astype(np.uint8)
    return out


def add_water(scene: Scene, rng: np.random.Generator, ex: Extras, hw: tuple[int, int]) -> None:
    """A static region with a churning texture in the lower part of the view (never masked)."""
    cam = scene.cam
    H, W = hw
    T = cam.K.shape[0]
    mid = T // 2
    x, y = rng.uniform(0.2, 0.8) * W, rng.uniform(0.55, 0.9) * H
    zb = _bg_depth_at(scene.layers[0], cam, mid, x, y)
    if not np.isfinite(zb):
        return
    z = zb * rng.uniform(0.6, 0.95)
    width_px = rng.uniform(*ex.water_px)
    tw = int(min(width_px, 700))
    th = int(min(tw * rng.uniform(0.25, 0.6), 420))
    texel = width_px / tw * z / cam.K[mid, 0, 0]
    p = cam.backproject(mid, x, y, z)
    _, right, down = _camera_axes(cam, mid)
    e1, e2 = right * texel, down * texel
    origin = p - (tw - 1) / 2 * e1 - (th - 1) / 2 * e2
    M = np.repeat(np.stack([e1, e2, origin], axis=1)[None], T, 0)
    alpha = make_shape(rng, th, tw)
    frames = _animated(rng, T, th, tw, "water")
    rgba = np.concatenate([frames, np.broadcast_to(alpha[None, ..., None], (T, th, tw, 1))], 3)
    scene.layers.append(Layer(len(scene.layers), 0, False, np.ascontiguousarray(rgba), M))


def add_spray(scene: Scene, rng: np.random.Generator, idx: int, ex: Extras) -> None:
    """Puffs left behind along layer ``idx``'s path: each stays put, grows in, churns."""
    cam, obj = scene.cam, scene.layers[idx]
    T = cam.K.shape[0]
    oh, ow = obj.texture.shape[-3:-1]
    centre = _centre(obj)
    size_world = max(oh, ow) * float(np.linalg.norm(obj.M[0, :, 0]))
    fwd, right, down = _camera_axes(cam, T // 2)
    for _ in range(int(rng.integers(ex.spray_puffs[0], ex.spray_puffs[1] + 1))):
        t0 = int(rng.integers(0, max(1, T - 6)))
        side = max(16, int(rng.uniform(50, 160)))
        texel = size_world * rng.uniform(0.5, 1.3) / side
        p = centre[t0] + 0.06 * _cam_depth(cam, t0, centre[t0]) * fwd  # just behind the object
        p = p + rng.normal(0, 0.25, 2) @ np.stack([right, down]) * size_world
        e1, e2 = right * texel, down * texel
        origin = p - (side - 1) / 2 * (e1 + e2)
        M = np.repeat(np.stack([e1, e2, origin], axis=1)[None], T, 0)
        frames = _animated(rng, T, side, side, "spray")
        yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
        r = np.hypot(xx - (side - 1) / 2, yy - (side - 1) / 2) / (side / 2)
        fluff = _noise(rng, side, side)
        grow = rng.uniform(4, 12)
        alpha = np.zeros((T, side, side, 1), np.uint8)
        for t in range(t0, T):
            radius = min(1.0, 0.3 + 0.7 * (t - t0) / grow)
            alpha[t, ..., 0] = np.where(r + 0.35 * (fluff - 0.5) < radius * 0.9, 255, 0)
        rgba = np.ascontiguousarray(np.concatenate([frames, alpha], axis=3))
        scene.layers.append(Layer(len(scene.layers), 0, False, rgba, M))


def add_extras(
    scene: Scene,
    rng: np.random.Generator,
    ex: Extras,
    hw: tuple[int, int],
    pool: TexturePool | None = None,
) -> dict[str, int]:
    """Apply ``ex`` to ``scene`` in place; returns what was added (counts)."""
    info = {"followed": 0, "limbs": 0, "water": 0, "spray": 0, "real_textures": 0}
    n_base = len(scene.layers)
    if pool is not None:
        bg = scene.layers[0]
        if rng.random() < ex.real_background_prob:
            h, w = bg.texture.shape[:2]
            bg.texture = pool.crop(rng, h, w)
            info["real_textures"] += 1
        for layer in scene.layers[1:n_base]:
            if rng.random() < ex.real_object_prob:
                h, w = layer.texture.shape[:2]
                cut = pool.cutout(rng, max_side=int(min(160, 1.5 * max(h, w))))
                if cut is not None:
                    retexture(layer, cut)
                    info["real_textures"] += 1
    moving = [i for i in range(1, n_base) if scene.layers[i].moving]
    if moving and rng.random() < ex.follow_prob:
        follow(scene, rng, moving[0], ex, hw)
        info["followed"] = 1
    for i in moving:
        if rng.random() < ex.limb_prob:
            before = len(scene.layers)
            add_limbs(scene, rng, i, ex)
            info["limbs"] += len(scene.layers) - before
        if rng.random() < ex.spray_prob:
            add_spray(scene, rng, i, ex)
            info["spray"] += 1
    if rng.random() < ex.water_prob:
        add_water(scene, rng, ex, hw)
        info["water"] = 1
    if len(scene.layers) > 255:
        raise ValueError(f"{len(scene.layers)} layers: masks hold at most 255")
    return info
