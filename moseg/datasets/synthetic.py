"""Procedural Kubric-like training scenes with exact ground truth, written through the contract.

A scene is a set of textured planes seen by a pinhole camera: a large background plane (tilted, so
its depth varies), static objects at various depths and independently moving objects (translation,
in-plane rotation, scale; some enter or leave the view, some start moving late). The camera pans,
tilts, rolls, zooms and translates, so static objects move in the image through parallax alone:
the hard case for a motion classifier.

Every plane maps texture pixels to image pixels through an exact homography per frame, so tracks,
occlusion-aware visibility, depth, instance masks and labels come from the geometry, not from a
tracker. A "realistic tracker" option then corrupts the tracks the way real trackers fail.

Run ``python -m data_prep.synthetic`` (Hydra; settings in moseg/conf/dataset/synthetic.yaml).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, fields
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from moseg.io import (
    LABEL_MOVING,
    LABEL_STATIC,
    ContractError,
    Sequence,
    SequenceFile,
    normalise_depth,
    sample_depth,
    write_sequence,
)
from moseg.utils.atomic import atomic_write_text, remove_stale_temps

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
NEAR = 0.05  # camera near plane, world units

# Object classes: (name, probability that an object of this class moves, hue in [0, 180))
CLASSES: list[tuple[str, float, int]] = [
    ("background", 0.0, 30),
    ("building", 0.0, 10),
    ("tree", 0.0, 60),
    ("rock", 0.05, 20),
    ("furniture", 0.15, 15),
    ("vehicle", 0.6, 110),
    ("ball", 0.7, 0),
    ("animal", 0.8, 25),
    ("person", 0.85, 150),
]
CLASS_EMBEDDING_SEED = 20250101  # fixed: the class embeddings are the same in every clip


@dataclass
class RealisticTracker:
    """How to corrupt exact tracks like a real point tracker. All off when ``enabled`` is false."""

    enabled: bool = False
    jitter_px: float = 0.3  # iid noise per frame
    drift_px: float = 0.15  # random-walk step per frame away from the query frame
    swap_prob: float = 0.3  # chance that a track latches onto its occluder when occluded
    die_prob: float = 0.1  # chance that a track is lost before the clip ends
    vis_flip_prob: float = 0.02  # chance per frame of a wrong visibility flag


@dataclass
class SynthConfig:
    """Generator settings. Ranges are (low, high) and drawn per clip."""

    height: int = 256
    width: int = 256
    num_frames: int = 24
    fps: float = 24.0
    num_tracks: int = 2000
    query_stride: int = 8  # query frames 0, stride, 2*stride, ...
    num_static: tuple[int, int] = (2, 5)
    num_moving: tuple[int, int] = (1, 4)
    fov_deg: tuple[float, float] = (45.0, 65.0)
    camera_travel: tuple[float, float] = (0.3, 2.0)  # world units of translation over the clip
    camera_static_prob: float = 0.1  # clips with a (nearly) fixed camera
    max_pan_deg: float = 8.0
    max_tilt_deg: float = 5.0
    max_roll_deg: float = 6.0
    zoom: tuple[float, float] = (0.85, 1.25)  # focal length at the end / at the start
    background_depth: tuple[float, float] = (18.0, 35.0)
    background_tilt_deg: tuple[float, float] = (0.0, 40.0)
    object_px: tuple[float, float] = (28.0, 90.0)  # object size in the image at mid-clip
    object_speed_px: tuple[float, float] = (1.5, 6.0)  # image speed of moving objects
    cross_prob: float = 0.4  # moving objects that enter or leave the view
    late_start_prob: float = 0.2  # moving objects that stand still at first
    max_spin_deg: float = 4.0  # in-plane rotation per frame
    scale_change: tuple[float, float] = (0.8, 1.25)  # object scale at the end / at the start
    feature_dim: int = 64  # simulated semantic feature width (0: none)
    feature_class_weight: float = 1.0
    feature_object_noise: float = 0.35
    feature_track_noise: float = 0.35
    depth_kind: str = "disparity"  # what the depth maps hold, as monocular models predict
    depth_max_side: int = 256  # depth maps are stored at most this large
    save_depth: bool = True
    save_masks: bool = True
    save_frames: bool = False
    realistic: RealisticTracker = field(default_factory=RealisticTracker)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        d = dict(d)
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown synthetic generator settings: {sorted(unknown)}")
        if "realistic" in d and not isinstance(d["realistic"], RealisticTracker):
            d["realistic"] = RealisticTracker(**dict(d["realistic"]))
        for f in fields(cls):
            if f.name in d and isinstance(d[f.name], list):
                d[f.name] = tuple(d[f.name])
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (tuples become lists), as stored in provenance and manifests."""
        return json.loads(json.dumps(asdict(self)))

    def digest(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, default=list).encode()
        return hashlib.sha256(blob + f"v{GENERATOR_VERSION}".encode()).hexdigest()[:16]


# ----------------------------------------------------------------------------------------------
# Geometry
# ----------------------------------------------------------------------------------------------
def _rot(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """World-to-camera rotation from pan (about y), tilt (about x), roll (about z), radians."""
    cy, sy = math.cos(yaw), math.sin(yaw)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    return rz @ rx @ ry


@dataclass
class Camera:
    K: np.ndarray  # [T, 3, 3] intrinsics, pixel centres at integers
    R: np.ndarray  # [T, 3, 3] world -> camera rotation
    C: np.ndarray  # [T, 3] camera centre in world

    def backproject(self, t: int, x: float, y: float, depth: float) -> np.ndarray:
        ray = np.linalg.solve(self.K[t], np.array([x, y, 1.0]))
        return self.C[t] + self.R[t].T @ (ray * depth)


@dataclass
class Layer:
    """A textured plane. ``M[t]`` maps texture pixel (i, j, 1) to the world point, per frame."""

    id: int  # instance id; 0 = background
    cls: int  # index into CLASSES
    moving: bool
    texture: np.ndarray  # [h, w, 3 or 4] uint8 RGB(A), or [T, h, w, 3 or 4]: one per frame
    M: np.ndarray  # [T, 3, 3]

    def homographies(self, cam: Camera) -> np.ndarray:
        """[T, 3, 3] texture pixel -> image pixel (homogeneous; third coord = camera depth)."""
        e3 = np.array([0.0, 0.0, 1.0])
        return np.einsum("tij,tjk->tik", cam.K @ cam.R, self.M - cam.C[:, :, None] * e3[None, None])

    @functools.cached_property
    def plane(self) -> tuple[np.ndarray, np.ndarray]:
        """Per frame plane normal [T, 3] and a point on the plane [T, 3]."""
        n = np.cross(self.M[:, :, 0], self.M[:, :, 1])
        return n, self.M[:, :, 2]


def _layer_depth(layer: Layer, cam: Camera, t: int, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Camera-frame depth of ``layer``'s plane along the rays through pixels (xs, ys).

    Rays that miss the plane (parallel, or behind the camera) get +inf.
    """
    n, p0 = layer.plane
    a = cam.R[t] @ n[t]
    k = cam.K[t]
    rx = (xs - k[0, 2]) / k[0, 0]
    ry = (ys - k[1, 2]) / k[1, 1]
    denom = a[0] * rx + a[1] * ry + a[2]
    num = float(n[t] @ (p0[t] - cam.C[t]))
    with np.errstate(divide="ignore", invalid="ignore"):
        d = num / denom
    return np.where(np.isfinite(d) & (d > NEAR), d, np.inf)


# ----------------------------------------------------------------------------------------------
# Textures and shapes
# ----------------------------------------------------------------------------------------------
def _noise(rng: np.random.Generator, h: int, w: int, octaves: int = 4) -> np.ndarray:
    out = np.zeros((h, w), np.float32)
    amp, total = 1.0, 0.0
    cell = max(h, w) / 4
    for _ in range(octaves):
        gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
        out += amp * cv2.resize(
            rng.random((gh, gw), dtype=np.float32), (w, h), interpolation=cv2.INTER_CUBIC
        )
        total += amp
        amp *= 0.55
        cell /= 2.5
    out /= total
    lo, hi = out.min(), out.max()
    return (out - lo) / (hi - lo + 1e-6)


def _hsv_color(rng: np.random.Generator, hue: float) -> np.ndarray:
    h = (hue + rng.normal(0, 12)) % 180
    hsv = np.array([[[h, rng.uniform(60, 230), rng.uniform(50, 240)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def make_texture(rng: np.random.Generator, h: int, w: int, hue: float) -> np.ndarray:
    """A colourful, corner-rich RGB texture [h, w, 3] uint8 whose colours lean to ``hue``."""
    n = _noise(rng, h, w)[..., None]
    c0, c1 = _hsv_color(rng, hue), _hsv_color(rng, hue + 90)
    img = (c0 * (1 - n) + c1 * n).astype(np.uint8)
    # strokes and blobs give trackers corners to lock on to
    for _ in range(int(rng.integers(8, 20) * (h * w) / 128**2) + 4):
        color = tuple(int(v) for v in _hsv_color(rng, hue + rng.choice([0, 45, 90])))
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        kind = rng.integers(3)
        if kind == 0:
            x1, y1 = (
                x0 + int(rng.integers(-w // 4, w // 4)),
                y0 + int(rng.integers(-h // 4, h // 4)),
            )
            cv2.line(img, (x0, y0), (x1, y1), color, int(rng.integers(1, 4)), cv2.LINE_AA)
        elif kind == 1:
            cv2.circle(
                img, (x0, y0), int(rng.integers(2, max(3, min(h, w) // 10))), color, -1, cv2.LINE_AA
            )
        else:
            s = int(rng.integers(2, max(3, min(h, w) // 8)))
            cv2.rectangle(img, (x0, y0), (x0 + s, y0 + s), color, -1)
    return img


def make_shape(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Binary alpha [h, w] uint8 (0/255): ellipse, rotated box or star-like blob."""
    alpha = np.zeros((h, w), np.uint8)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    kind = rng.integers(3)
    if kind == 0:
        cv2.ellipse(
            alpha, (round(cx), round(cy)), (int(w * 0.45), int(h * 0.45)), 0, 0, 360, 255, -1
        )
    elif kind == 1:
        box = cv2.boxPoints(((cx, cy), (w * 0.75, h * 0.55), float(rng.uniform(0, 90))))
        cv2.fillPoly(alpha, [np.round(box).astype(np.int32)], 255)
    else:
        ang = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        r = np.ones_like(ang)
        for k in range(2, 6):
            r += rng.uniform(0, 0.18) * np.cos(k * ang + rng.uniform(0, 2 * np.pi))
        r = r / r.max() * 0.47
        pts = np.stack([cx + r * w * np.cos(ang), cy + r * h * np.sin(ang)], axis=1)
        cv2.fillPoly(alpha, [np.round(pts).astype(np.int32)], 255)
    return alpha


def class_embeddings(dim: int) -> np.ndarray:
    """[num_classes, dim] unit vectors, identical in every clip (fixed seed)."""
    rng = np.random.default_rng([CLASS_EMBEDDING_SEED, dim])
    e = rng.normal(size=(len(CLASSES), dim))
    return (e / np.linalg.norm(e, axis=1, keepdims=True)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Scene
# ----------------------------------------------------------------------------------------------
@dataclass
class Scene:
    cam: Camera
    layers: list[Layer]  # layers[i].id == i; layers[0] is the background

    @property
    def object_moving(self) -> np.ndarray:
        return np.array([layer.moving for layer in self.layers], bool)


def _camera(rng: np.random.Generator, cfg: SynthConfig) -> Camera:
    T, W, H = cfg.num_frames, cfg.width, cfg.height
    s = np.linspace(0.0, 1.0, T)
    static = rng.random() < cfg.camera_static_prob
    scale = 0.05 if static else 1.0
    f0 = (W / 2) / math.tan(math.radians(rng.uniform(*cfg.fov_deg)) / 2)
    zoom_end = 1.0 if static else rng.uniform(*cfg.zoom)
    f = f0 * zoom_end**s
    K = np.zeros((T, 3, 3))
    K[:, 0, 0] = K[:, 1, 1] = f
    K[:, 0, 2], K[:, 1, 2], K[:, 2, 2] = (W - 1) / 2, (H - 1) / 2, 1.0
    ends = np.radians([cfg.max_pan_deg, cfg.max_tilt_deg, cfg.max_roll_deg]) * scale
    end = rng.uniform(-ends, ends)
    shake = rng.normal(0, 0.002 * scale, size=(T, 3))
    R = np.stack([_rot(*(end * si + shake[i])) for i, si in enumerate(s)])
    direction = rng.normal(size=3) * np.array([1.0, 0.4, 0.8])
    direction /= np.linalg.norm(direction)
    travel = rng.uniform(*cfg.camera_travel) * scale
    C = (s[:, None] * direction[None] * travel) + rng.normal(0, 0.004 * scale, size=(T, 3))
    return Camera(K=K, R=R, C=C)


def _background(rng: np.random.Generator, cfg: SynthConfig, cam: Camera) -> Layer:
    T, W, H = cfg.num_frames, cfg.width, cfg.height
    tilt_range = list(cfg.background_tilt_deg)
    z = rng.uniform(*cfg.background_depth)
    f0 = cam.K[0, 0, 0]
    border = np.array([[x, y] for x in np.linspace(-1, W, 5) for y in np.linspace(-1, H, 5)])
    for _ in range(8):
        tilt = math.radians(rng.uniform(*tilt_range))
        texel = z / f0  # about one texel per pixel at the centre of the view
        e1 = np.array([texel, 0.0, 0.0])
        e2 = np.array([0.0, math.cos(tilt), -math.sin(tilt)]) * texel
        p0 = np.array([0.0, 0.0, z])
        M0 = np.stack([e1, e2, p0], axis=1)
        layer = Layer(0, 0, False, np.zeros((1, 1, 3), np.uint8), np.repeat(M0[None], T, 0))
        Hs = layer.homographies(cam)
        uv = []
        ok = True
        for t in range(T):
            d = _layer_depth(layer, cam, t, border[:, 0], border[:, 1])
            if not np.isfinite(d).all():
                ok = False
                break
            p = np.linalg.solve(Hs[t], np.stack([border[:, 0], border[:, 1], np.ones(len(border))]))
            uv.append((p[:2] / p[2]).T)
        if ok:
            uv = np.concatenate(uv)
            lo, hi = uv.min(0) - 8, uv.max(0) + 8
            size = np.ceil(hi - lo).astype(int)
            if size.max() <= 4 * max(W, H):
                M = M0.copy()
                M[:, 2] = p0 + lo[0] * e1 + lo[1] * e2
                tex = make_texture(rng, int(size[1]), int(size[0]), CLASSES[0][2])
                return Layer(0, 0, False, tex, np.repeat(M[None], T, 0))
        tilt_range = [0.0, tilt_range[1] * 0.5]  # a flatter plane keeps the horizon out of view
    raise RuntimeError("could not fit a background plane to the camera path")


def _object_M(
    center: np.ndarray, angle: np.ndarray, scale: np.ndarray, tex_hw: tuple[int, int], texel: float
) -> np.ndarray:
    """[T, 3, 3] texture->world for a camera-facing plane with the given pose per frame."""
    h, w = tex_hw
    c, s = np.cos(angle) * scale * texel, np.sin(angle) * scale * texel
    zeros = np.zeros_like(c)
    e1 = np.stack([c, s, zeros], axis=1)
    e2 = np.stack([-s, c, zeros], axis=1)
    origin = center - (w - 1) / 2 * e1 - (h - 1) / 2 * e2
    return np.stack([e1, e2, origin], axis=2)


def _pick_class(rng: np.random.Generator, moving: bool) -> int:
    p = np.array([c[1] if moving else 1 - c[1] for c in CLASSES[1:]])
    return 1 + int(rng.choice(len(p), p=p / p.sum()))


def _bg_depth_at(layer: Layer, cam: Camera, t: int, x: float, y: float) -> float:
    return float(_layer_depth(layer, cam, t, np.array([x]), np.array([y]))[0])


def build_scene(rng: np.random.Generator, cfg: SynthConfig) -> Scene:
    """Draw camera, background, static and moving objects for one clip."""
    T, W, H = cfg.num_frames, cfg.width, cfg.height
    cam = _camera(rng, cfg)
    bg = _background(rng, cfg, cam)
    layers = [bg]
    mid = T // 2
    f_mid = cam.K[mid, 0, 0]
    n_static = int(rng.integers(cfg.num_static[0], cfg.num_static[1] + 1))
    n_moving = int(rng.integers(cfg.num_moving[0], cfg.num_moving[1] + 1))
    times = np.arange(T, dtype=np.float64)
    for k in range(n_static + n_moving):
        moving = k >= n_static
        cls = _pick_class(rng, moving)
        th, tw = (int(v) for v in rng.integers(40, 110, size=2))
        x, y = rng.uniform(0.1 * W, 0.9 * W), rng.uniform(0.1 * H, 0.9 * H)
        z_bg = _bg_depth_at(bg, cam, mid, x, y)
        # log-uniform between very near and just in front of the background: near objects
        # give the strongest parallax
        z = math.exp(rng.uniform(math.log(2.5), math.log(max(3.0, 0.8 * z_bg))))
        size_px = rng.uniform(*cfg.object_px)
        texel = size_px * z / f_mid / max(th, tw)
        angle0 = rng.uniform(0, 2 * np.pi)
        if not moving:
            center = np.repeat(cam.backproject(mid, x, y, z)[None], T, 0)
            angle = np.full(T, angle0)
            scale = np.ones(T)
        else:
            speed = rng.uniform(*cfg.object_speed_px)
            heading = rng.uniform(0, 2 * np.pi)
            d = np.array([math.cos(heading), math.sin(heading)])
            length = speed * (T - 1)
            if rng.random() < cfg.cross_prob:
                # one end of the path lies outside the view: the object enters or leaves
                offset = d * (0.5 * max(W, H) + size_px * 0.6)
                offset += rng.uniform(-0.3, 0.3, 2) * np.array([W, H])
                if rng.random() < 0.5:
                    start = np.array([W / 2, H / 2]) - offset
                    end = start + d * length
                else:
                    end = np.array([W / 2, H / 2]) + offset
                    start = end - d * length
            else:
                start = np.array([x, y]) - d * length / 2
                end = start + d * length
            z_end = z * rng.uniform(0.8, 1.25)
            p_start = cam.backproject(0, *start, z)
            p_end = cam.backproject(T - 1, *end, z_end)
            s = times / (T - 1)
            if rng.random() < cfg.late_start_prob:
                t0 = rng.integers(2, T // 2)
                s = np.clip((times - t0) / (T - 1 - t0), 0, 1)
            bend = rng.normal(0, 0.1) * np.linalg.norm(p_end - p_start)
            perp = np.cross(p_end - p_start, [0, 0, 1.0])
            perp /= np.linalg.norm(perp) + 1e-9
            center = (
                p_start
                + s[:, None] * (p_end - p_start)
                + (bend * np.sin(np.pi * s))[:, None] * perp
            )
            spin = math.radians(rng.uniform(-cfg.max_spin_deg, cfg.max_spin_deg))
            angle = angle0 + spin * s * (T - 1)
            scale = rng.uniform(*cfg.scale_change) ** s
        tex = make_texture(rng, th, tw, CLASSES[cls][2])
        rgba = np.concatenate([tex, make_shape(rng, th, tw)[..., None]], axis=2)
        M = _object_M(center, angle, scale, (th, tw), texel)
        layers.append(Layer(len(layers), cls, moving, rgba, M))
    return Scene(cam=cam, layers=layers)


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------
@dataclass
class Render:
    frames: np.ndarray  # [T, H, W, 3] uint8 RGB
    ids: np.ndarray  # [T, H, W] uint8 instance id of the visible surface
    depth: np.ndarray  # [T, H, W] float32 camera depth of the visible surface
    H: list[np.ndarray]  # per layer [T, 3, 3] texture -> image homographies


def render(scene: Scene, height: int, width: int) -> Render:
    """Z-buffered rendering of every layer in every frame."""
    cam, T = scene.cam, scene.cam.K.shape[0]
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = np.zeros((T, height, width, 3), np.uint8)
    ids = np.zeros((T, height, width), np.uint8)
    zbuf = np.full((T, height, width), np.inf, np.float32)
    Hs = [layer.homographies(cam) for layer in scene.layers]
    for t in range(T):
        for layer, Ht in zip(scene.layers, Hs, strict=True):
            tex = layer.texture[t] if layer.texture.ndim == 4 else layer.texture  # animated
            th, tw = tex.shape[:2]
            corners = (
                Ht[t]
                @ np.array(
                    [
                        [-0.5, -0.5, 1],
                        [tw - 0.5, -0.5, 1],
                        [tw - 0.5, th - 0.5, 1],
                        [-0.5, th - 0.5, 1],
                    ]
                ).T
            )
            if (corners[2] <= NEAR).any():
                continue  # partly behind the camera: never generated, skip to be safe
            cx, cy = corners[0] / corners[2], corners[1] / corners[2]
            x0, x1 = max(0, int(math.floor(cx.min()))), min(width, int(math.ceil(cx.max())) + 1)
            y0, y1 = max(0, int(math.floor(cy.min()))), min(height, int(math.ceil(cy.max())) + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
            warped = cv2.warpPerspective(
                tex,
                shift @ Ht[t],
                (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            d = _layer_depth(layer, cam, t, xs[y0:y1, x0:x1], ys[y0:y1, x0:x1])
            zb = zbuf[t, y0:y1, x0:x1]
            win = d < zb
            if tex.shape[2] == 4:
                win &= warped[..., 3] > 127
            zb[win] = d[win]
            frames[t, y0:y1, x0:x1][win] = warped[..., :3][win]
            ids[t, y0:y1, x0:x1][win] = layer.id
    return Render(frames=frames, ids=ids, depth=zbuf, H=Hs)


# ----------------------------------------------------------------------------------------------
# Tracks
# ----------------------------------------------------------------------------------------------
def project(Ht: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Texture points ``uv [N, 2]`` through ``Ht [T, 3, 3]`` -> image xy [N, T, 2], depth [N, T]."""
    p = np.einsum("tij,nj->nti", Ht, np.concatenate([uv, np.ones((len(uv), 1))], axis=1))
    w = p[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        xy = p[..., :2] / w[..., None]
    return xy, w


def visible(
    ids: np.ndarray,
    layer_id: np.ndarray,
    xy: np.ndarray,
    w: np.ndarray,
    frames: np.ndarray | None = None,
) -> np.ndarray:
    """[N, T'] true where the point of ``layer_id [N]`` at ``xy [N, T', 2]`` is the visible surface.

    ``frames`` picks which frames of ``ids [T, H, W]`` the T' columns refer to (default all).
    """
    T, H, W = ids.shape
    fr = np.arange(T) if frames is None else frames
    x, y = xy[..., 0], xy[..., 1]
    inside = (x >= -0.5) & (x < W - 0.5) & (y >= -0.5) & (y < H - 0.5) & (w > NEAR)
    inside &= np.isfinite(x) & np.isfinite(y)
    xi = np.clip(np.nan_to_num(np.rint(x)), 0, W - 1).astype(np.int64)
    yi = np.clip(np.nan_to_num(np.rint(y)), 0, H - 1).astype(np.int64)
    on_top = ids[np.broadcast_to(fr[None], x.shape), yi, xi] == layer_id[:, None]
    return inside & on_top


@dataclass
class TrackGT:
    """Exact ground truth of every track, for tests and for the corruption step."""

    layer: np.ndarray  # [N] instance id of the track's surface
    uv: np.ndarray  # [N, 2] texture coordinates on that surface
    query_frame: np.ndarray  # [N]
    xy: np.ndarray  # [N, T, 2] exact positions
    depth: np.ndarray  # [N, T] exact camera depth of the point
    visible: np.ndarray  # [N, T] exact visibility


def sample_tracks(
    rng: np.random.Generator, r: Render, num_tracks: int, query_stride: int
) -> TrackGT:
    """Start tracks at random pixel centres of the query frames and follow them exactly."""
    T, H, W = r.ids.shape
    qframes = np.arange(0, T, max(1, query_stride))
    share = np.full(len(qframes), num_tracks // len(qframes))
    share[: num_tracks % len(qframes)] += 1
    share = np.minimum(share, H * W)
    pts, qs = [], []
    for q, n in zip(qframes, share, strict=True):
        pix = rng.choice(H * W, size=int(n), replace=False)
        pts.append(np.stack([pix % W, pix // W], axis=1).astype(np.float64))
        qs.append(np.full(len(pix), q))
    return ground_truth_tracks(r, np.concatenate(pts), np.concatenate(qs))


def ground_truth_tracks(r: Render, points: np.ndarray, query_frame: np.ndarray) -> TrackGT:
    """Exact tracks of arbitrary query points ``points [N, 2]`` (x, y) at ``query_frame [N]``.

    Each point belongs to the surface visible at its (rounded) pixel on its query frame; it is
    mapped onto that surface's texture and projected into every frame. Used both to sample
    training tracks and to score a real tracker's output against the truth.
    """
    T, H, W = r.ids.shape
    points = np.asarray(points, np.float64)
    query = np.asarray(query_frame, np.int64)
    xi = np.clip(np.rint(points[:, 0]), 0, W - 1).astype(np.int64)
    yi = np.clip(np.rint(points[:, 1]), 0, H - 1).astype(np.int64)
    layer = r.ids[query, yi, xi].astype(np.int64)
    uv = np.zeros((len(points), 2))
    for lyr in np.unique(layer):
        for q in np.unique(query[layer == lyr]):
            sel = (layer == lyr) & (query == q)
            hom = np.stack([points[sel, 0], points[sel, 1], np.ones(sel.sum())])
            p = np.linalg.solve(r.H[lyr][q], hom)
            uv[sel] = (p[:2] / p[2]).T
    xy = np.zeros((len(layer), T, 2))
    depth = np.zeros((len(layer), T))
    for lyr in np.unique(layer):
        sel = layer == lyr
        xy[sel], depth[sel] = project(r.H[lyr], uv[sel])
    vis = visible(r.ids, layer, xy, depth)
    return TrackGT(
        layer=layer, uv=uv, query_frame=query.astype(np.int32), xy=xy, depth=depth, visible=vis
    )


def corrupt_tracks(
    rng: np.random.Generator, gt: TrackGT, r: Render, rt: RealisticTracker
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracks, visibility and confidence as a real tracker would report them.

    Failure modes: identity swaps onto the occluder when a point gets occluded, tracks lost
    early, random-walk drift away from the query frame, per-frame jitter and wrong visibility
    flags. The query frame itself stays exact, as trackers return the query point there.
    """
    N, T = gt.visible.shape
    _, H, W = r.ids.shape
    xy, vis = gt.xy.copy(), gt.visible.copy()
    n_idx = np.arange(N)
    q = gt.query_frame
    t_grid = np.arange(T)[None, :]
    after, before = t_grid > q[:, None], t_grid < q[:, None]
    x, y = gt.xy[..., 0], gt.xy[..., 1]
    inside = (x >= -0.5) & (x < W - 0.5) & (y >= -0.5) & (y < H - 0.5)
    gone = ~gt.visible & inside  # occluded, not out of view

    # identity swaps: at the first occlusion after (before) the query frame the track jumps
    # onto the occluding surface and follows it from then on
    for direction, side in ((1, after), (-1, before)):
        prev_vis = np.roll(gt.visible, direction, axis=1)
        onset = gone & prev_vis & side
        has = onset.any(axis=1) & (rng.random(N) < rt.swap_prob)
        for n in n_idx[has]:
            cols = np.flatnonzero(onset[n])
            t = int(cols[0] if direction == 1 else cols[-1])
            xi = int(np.clip(np.rint(x[n, t]), 0, W - 1))
            yi = int(np.clip(np.rint(y[n, t]), 0, H - 1))
            occ = int(r.ids[t, yi, xi])
            p = np.linalg.solve(r.H[occ][t], np.array([x[n, t], y[n, t], 1.0]))
            span = np.arange(t, T) if direction == 1 else np.arange(0, t + 1)
            nxy, nw = project(r.H[occ][span], (p[:2] / p[2])[None])
            xy[n, span] = nxy[0]
            vis[n, span] = visible(r.ids, np.array([occ]), nxy, nw, frames=span)[0]

    # lost tracks: invisible from a random frame on (away from the query frame)
    dies = rng.random(N) < rt.die_prob
    death = np.where(
        rng.random(N) < 0.5,
        q + 1 + (rng.random(N) * np.maximum(T - 1 - q, 0)).astype(int),
        q - 1 - (rng.random(N) * np.maximum(q, 0)).astype(int),
    )
    dead = dies[:, None] & (
        ((t_grid >= death[:, None]) & after) | ((t_grid <= death[:, None]) & before)
    )
    vis &= ~dead

    # drift: random walk growing away from the query frame; jitter: iid
    steps = rng.normal(0, rt.drift_px, size=(N, T, 2)) * (1 + 3 * dead[..., None])
    walk = np.zeros_like(steps)
    for n_q in np.unique(q):
        rows = q == n_q
        fwd = np.cumsum(steps[rows, n_q + 1 :], axis=1)
        bwd = np.cumsum(steps[rows, :n_q][:, ::-1], axis=1)[:, ::-1]
        walk[rows, n_q + 1 :] = fwd
        walk[rows, :n_q] = bwd
    jitter = rng.normal(0, rt.jitter_px, size=(N, T, 2))
    jitter[n_idx, q] = 0
    noise = walk + jitter
    xy = xy + noise

    flips = (rng.random((N, T)) < rt.vis_flip_prob) & (after | before)
    vis ^= flips
    x, y = xy[..., 0], xy[..., 1]
    vis &= (x >= -0.5) & (x < W - 0.5) & (y >= -0.5) & (y < H - 0.5) & np.isfinite(x)
    vis[n_idx, q] = True
    xy[n_idx, q] = gt.xy[n_idx, q]

    err = np.linalg.norm(noise, axis=2)
    conf = np.exp(-err / 2.0) * rng.uniform(0.75, 1.0, size=(N, T))
    conf = np.where(vis, conf, conf * 0.4)
    conf[n_idx, q] = 1.0
    return xy, vis, np.clip(conf, 0, 1)


# ----------------------------------------------------------------------------------------------
# One clip
# ----------------------------------------------------------------------------------------------
@dataclass
class Clip:
    sequence: Sequence
    scene: Scene
    render: Render
    gt: TrackGT


def generate_clip(
    cfg: SynthConfig,
    seed: int | np.random.SeedSequence | list[int],
    name: str = "clip",
    split: str = "train",
) -> Clip:
    """Generate one clip. The same ``seed`` and ``cfg`` always give the same clip."""
    ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    rng = np.random.default_rng(ss)
    scene = build_scene(rng, cfg)
    r = render(scene, cfg.height, cfg.width)
    gt = sample_tracks(rng, r, cfg.num_tracks, cfg.query_stride)
    moving = scene.object_moving
    label = np.where(moving[gt.layer], LABEL_MOVING, LABEL_STATIC).astype(np.int8)

    if cfg.realistic.enabled:
        xy, vis, conf = corrupt_tracks(rng, gt, r, cfg.realistic)
    else:
        xy, vis, conf = gt.xy, gt.visible, np.ones(gt.visible.shape)
    # keep coordinates finite and near the frame for points far out of view
    bound = 4.0 * max(cfg.height, cfg.width)
    xy = np.clip(np.nan_to_num(xy, nan=-bound), -bound, bound)

    inv = 1.0 / r.depth if cfg.depth_kind == "disparity" else r.depth
    depth = _resize_depth(inv, cfg.depth_max_side)
    depth_n, raw = normalise_depth(depth)
    track_depth = sample_depth(depth_n, xy, (cfg.height, cfg.width)).astype(np.float16)

    features = None
    if cfg.feature_dim > 0:
        emb = class_embeddings(cfg.feature_dim)
        obj_cls = np.array([layer.cls for layer in scene.layers])
        obj_feat = cfg.feature_class_weight * emb[obj_cls] + rng.normal(
            0, cfg.feature_object_noise / math.sqrt(cfg.feature_dim), emb[obj_cls].shape
        )
        features = obj_feat[gt.layer] + rng.normal(
            0,
            cfg.feature_track_noise / math.sqrt(cfg.feature_dim),
            (len(gt.layer), cfg.feature_dim),
        )
        features = features.astype(np.float16)

    seq = Sequence(
        name=name,
        tracks=xy.astype(np.float32),
        visibility=vis.astype(bool),
        confidence=conf.astype(np.float16),
        query_frame=gt.query_frame.astype(np.int32),
        label=label,
        height=cfg.height,
        width=cfg.width,
        fps=cfg.fps,
        source="synthetic",
        split=split,
        provenance={
            "generator": {
                "name": "moseg.synthetic",
                "version": GENERATOR_VERSION,
                "config_digest": cfg.digest(),
                "settings": cfg.to_dict(),
            },
            "tracker": {
                "name": "realistic_synthetic" if cfg.realistic.enabled else "exact",
                "settings": asdict(cfg.realistic),
            },
            "depth": {"name": "exact", "kind": cfg.depth_kind},
            "features": {"name": "class_embedding_plus_noise", "dim": cfg.feature_dim},
        },
        instance=gt.layer.astype(np.int32),
        track_depth=track_depth if cfg.save_depth else None,
        features=features,
        depth=depth_n if cfg.save_depth else None,
        depth_kind=cfg.depth_kind,
        depth_raw_range=raw,
        masks=r.ids if cfg.save_masks else None,
        object_moving=moving if cfg.save_masks else None,
        frames=r.frames if cfg.save_frames else None,
    )
    return Clip(sequence=seq, scene=scene, render=r, gt=gt)


def _resize_depth(d: np.ndarray, max_side: int) -> np.ndarray:
    T, H, W = d.shape
    scale = max_side / max(H, W)
    if scale >= 1:
        return d.astype(np.float32)
    size = (max(1, round(W * scale)), max(1, round(H * scale)))
    return np.stack(
        [cv2.resize(f, size, interpolation=cv2.INTER_AREA) for f in d.astype(np.float32)]
    )


# ----------------------------------------------------------------------------------------------
# A whole split: parallel, resumable, atomic
# ----------------------------------------------------------------------------------------------
def clip_seed(seed: int, split: str, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([seed, zlib.crc32(split.encode()), index])


def clip_name(split: str, index: int) -> str:
    return f"synth_{split}_{index:06d}"


def _write_one(args: tuple[dict, int, str, int, str]) -> dict[str, Any]:
    cfg_d, seed, split, index, out = args
    cv2.setNumThreads(1)
    cfg = SynthConfig.from_dict(cfg_d)
    clip = generate_clip(cfg, clip_seed(seed, split, index), clip_name(split, index), split)
    write_sequence(out, clip.sequence)
    lab = clip.sequence.label
    return {"tracks": int(len(lab)), "moving": int((lab == LABEL_MOVING).sum())}


def _is_done(path: Path, digest: str) -> bool:
    if not path.exists():
        return False
    try:
        with SequenceFile(path) as f:
            return f.meta.provenance.get("generator", {}).get("config_digest") == digest
    except (ContractError, OSError, KeyError):
        return False


def generate_split(
    root: str | Path,
    split: str,
    num_clips: int,
    cfg: SynthConfig,
    seed: int = 0,
    workers: int | None = None,
    progress: bool | None = None,
) -> dict[str, Any]:
    """Write ``num_clips`` clips to ``root/split/``; clips already there are kept (resume).

    A folder made with other generator settings is an error, never silently mixed.
    Returns counts: clips written, clips kept, tracks and moving tracks written.
    """
    out_dir = Path(root) / split
    out_dir.mkdir(parents=True, exist_ok=True)
    for p in remove_stale_temps(out_dir):
        log.info("removed an interrupted write: %s", p)
    digest = cfg.digest()
    manifest = out_dir / "manifest.json"
    if manifest.exists():
        old = json.loads(manifest.read_text())
        if old.get("config_digest") != digest or old.get("seed") != seed:
            raise RuntimeError(
                f"{out_dir} holds synthetic clips made with other settings "
                f"(digest {old.get('config_digest')}, seed {old.get('seed')}; now {digest}, "
                f"seed {seed}). Use another root or delete that folder."
            )
    atomic_write_text(
        manifest,
        json.dumps(
            {
                "generator": "moseg.synthetic",
                "version": GENERATOR_VERSION,
                "config_digest": digest,
                "seed": seed,
                "num_clips": num_clips,
                "settings": cfg.to_dict(),
            },
            indent=2,
        ),
    )
    todo = []
    kept = 0
    for i in range(num_clips):
        path = out_dir / f"{clip_name(split, i)}.h5"
        if _is_done(path, digest):
            kept += 1
        else:
            todo.append((cfg.to_dict(), seed, split, i, str(path)))
    workers = workers or min(len(os.sched_getaffinity(0)), max(1, len(todo)))
    if progress is None:
        progress = sys.stderr.isatty()
    stats = {"written": 0, "kept": kept, "tracks": 0, "moving": 0}
    bar = tqdm(total=len(todo), desc=f"synthetic/{split}", unit="clip", disable=not progress)
    if workers <= 1:
        results = (_write_one(a) for a in todo)
        for res in results:
            _accumulate(stats, res)
            bar.update()
    else:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as ex:
            for fut in as_completed([ex.submit(_write_one, a) for a in todo]):
                _accumulate(stats, fut.result())
                bar.update()
    bar.close()
    log.info(
        "synthetic/%s: wrote %d clips, kept %d, %d tracks (%d moving) in %s",
        split,
        stats["written"],
        kept,
        stats["tracks"],
        stats["moving"],
        out_dir,
    )
    return stats


def _accumulate(stats: dict[str, int], res: dict[str, int]) -> None:
    stats["written"] += 1
    stats["tracks"] += res["tracks"]
    stats["moving"] += res["moving"]


def prepare(data_cfg: Any) -> dict[str, dict[str, Any]]:
    """Generate every split named in a ``moseg/conf/dataset/synthetic.yaml``-style config."""
    from omegaconf import OmegaConf

    d = (
        OmegaConf.to_container(data_cfg, resolve=True)
        if not isinstance(data_cfg, dict)
        else data_cfg
    )
    cfg = SynthConfig.from_dict(d.get("generator", {}))
    out = {}
    for split, n in d["splits"].items():
        split_cfg = cfg
        if split in d.get("save_frames_splits", []):
            split_cfg = SynthConfig.from_dict({**cfg.to_dict(), "save_frames": True})
        out[split] = generate_split(
            d["root"], split, int(n), split_cfg, seed=int(d["seed"]), workers=d.get("workers")
        )
    return out


def _main() -> None:
    import hydra

    from moseg.config import CONF_DIR

    @hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="prepare")
    def run(cfg) -> None:
        stats = prepare(cfg.dataset)
        for split, s in stats.items():
            print(
                f"{split}: {s['written']} written, {s['kept']} kept, {s['tracks']} tracks, "
                f"{s['moving']} moving -> {Path(cfg.dataset.root) / split}"
            )

    run()


if __name__ == "__main__":
    _main()
