"""Indexed PNG masks in the DAVIS palette: one folder per sequence, one PNG per frame.

Writing a sequence is atomic: the PNGs go into a hidden temporary folder that is renamed into
place when all are written, so a folder that exists is complete (an interrupted run leaves only
a ``.tmp-*`` folder, which the next run removes and redoes). Each folder lists the files moseg
wrote in ``.moseg-masks.json``; rewriting a folder replaces those and keeps anything else a user
put there (moved over from the old folder, which is set aside as ``.old-*`` until then).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Sequence as Seq
from pathlib import Path

import numpy as np
from PIL import Image

from moseg.prep.frames import natural_key
from moseg.viz import davis_palette

MASK_SUFFIX = ".png"


class MaskError(ValueError):
    """A mask folder is missing, incomplete or unreadable; the message names the path."""


def _palette_bytes() -> list[int]:
    return davis_palette().reshape(-1).astype(int).tolist()


def write_mask_png(path: str | Path, labels: np.ndarray) -> None:
    """``labels [H, W] uint8`` (0 background, 1..254 objects) as an indexed PNG."""
    im = Image.fromarray(np.ascontiguousarray(labels, dtype=np.uint8), mode="P")
    im.putpalette(_palette_bytes())
    im.save(path, format="PNG")


def read_mask_png(path: str | Path) -> np.ndarray:
    """``[H, W] uint8`` object ids of an indexed (palette) or greyscale PNG.

    A greyscale 0/255 PNG (DAVIS 2016 style) reads as 0/1; an RGB PNG is an error (its colours
    would have to be mapped to ids by a palette we do not know)."""
    try:
        with Image.open(path) as im:
            mode = im.mode
            a = np.asarray(im)
    except OSError as e:
        raise MaskError(f"{path}: not a readable PNG ({e})") from e
    if mode == "P":
        return a.astype(np.uint8)
    if mode in ("L", "1", "I", "I;16"):
        vals = np.unique(a)
        if set(vals.tolist()) <= {0, 255}:
            return (a > 0).astype(np.uint8)
        if a.max() > 255:
            raise MaskError(f"{path}: grey values above 255 cannot be object ids")
        return a.astype(np.uint8)
    raise MaskError(f"{path}: mode {mode} PNG; masks must be indexed (palette) or greyscale")


MANIFEST = ".moseg-masks.json"


def _ours(folder: Path) -> set[str] | None:
    """The file names moseg wrote in ``folder`` (its manifest); None without one (older
    runs, which wrote only PNGs)."""
    try:
        return set(json.loads((folder / MANIFEST).read_text())["files"])
    except FileNotFoundError:
        return None


def _keep_users_files(old: Path, folder: Path) -> None:
    """Move what a user put in ``old`` (not moseg's masks) into ``folder``, then remove
    ``old``."""
    ours = _ours(old)
    for p in old.iterdir():
        mine = p.name == MANIFEST or (p.suffix == MASK_SUFFIX if ours is None else p.name in ours)
        if not mine and not (folder / p.name).exists():
            p.rename(folder / p.name)
    shutil.rmtree(old)


def write_sequence_masks(folder: str | Path, names: Seq[str], masks: np.ndarray) -> Path:
    """Write ``masks [T, H, W] uint8`` as ``folder/<names[t]>.png`` atomically (see module)."""
    folder = Path(folder)
    if len(names) != len(masks):
        raise ValueError(f"{folder}: {len(masks)} masks for {len(names)} frame names")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = folder.parent / f".tmp-{folder.name}-{tag}"
    tmp.mkdir()
    try:
        files = [f"{name}{MASK_SUFFIX}" for name in names]
        for f, m in zip(files, masks, strict=True):
            write_mask_png(tmp / f, m)
        (tmp / MANIFEST).write_text(json.dumps({"files": files}))
        old = None
        if folder.exists():
            old = folder.parent / f".old-{folder.name}-{tag}"
            folder.rename(old)
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        _keep_users_files(old, folder)
    return folder


def clean_temp_folders(parent: str | Path) -> None:
    """Tidy what an interrupted :func:`write_sequence_masks` left in ``parent``: half-written
    ``.tmp-*`` folders go; an ``.old-*`` folder set aside goes back into place when its
    replacement never arrived, else gives the user's files to the replacement."""
    parent = Path(parent)
    if not parent.is_dir():
        return
    for p in parent.glob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in parent.glob(".old-*"):
        target = parent / p.name[len(".old-") :].rsplit("-", 1)[0]
        if target.exists():
            _keep_users_files(p, target)
        else:
            p.rename(target)


def mask_files(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise MaskError(f"{folder}: no mask folder for this sequence")
    files = sorted(folder.glob(f"*{MASK_SUFFIX}"), key=lambda p: natural_key(p.name))
    if not files:
        raise MaskError(f"{folder}: holds no {MASK_SUFFIX} masks")
    return files


def read_sequence_masks(folder: str | Path, names: Seq[str] | None = None) -> np.ndarray:
    """``[T, H, W] uint8`` from ``folder``: the files ``<name>.png`` for ``names`` (each must
    exist), or every PNG in natural order. Sizes must agree."""
    folder = Path(folder)
    if names is None:
        files = mask_files(folder)
    else:
        files = [folder / f"{n}{MASK_SUFFIX}" for n in names]
        missing = [f.name for f in files if not f.is_file()]
        if missing:
            raise MaskError(
                f"{folder}: {len(missing)} of {len(files)} masks missing "
                f"(first: {', '.join(missing[:3])})"
            )
    out = [read_mask_png(f) for f in files]
    for f, m in zip(files, out, strict=True):
        if m.shape != out[0].shape:
            raise MaskError(
                f"{f}: {m.shape[1]}x{m.shape[0]} px, but {files[0].name} is "
                f"{out[0].shape[1]}x{out[0].shape[0]}: masks of one sequence share one size"
            )
    return np.stack(out)
