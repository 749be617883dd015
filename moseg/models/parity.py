"""Differential check of :class:`~moseg.models.release.ReleaseClassifier` against golden outputs
of the release's own code (``benchmarks/release/parity.py``, ``tests/test_release_model.py``).

A fixture folder holds one release-format checkpoint (``*.pth``), cases ``*.npz`` with the
release's batch (``traj``, ``mask``, ``depth``, ``visib_value``, ``confi_value``, ``dino``) and
its outputs (``prob`` [N], ``logit`` [N], ``motion_feat`` [1, 16, N]), and optionally
``meta.json`` whose ``constructor`` holds the release's constructor flags.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from moseg.models.checkpoint import import_release, load_classifier_checkpoint

INPUT_KEYS = ("traj", "mask", "depth", "visib_value", "confi_value", "dino")
OUTPUT_KEYS = ("prob", "logit", "motion_feat")
# the release constructor's argument names -> ReleaseConfig's
_FLAG_NAMES = {
    "extra_info": "extra_info",
    "oanet": "oanet",
    "enable_pos_embed": "pos_embed",
    "load_dino": "dino",
    "dino_later": "dino_later",
    "dino_woatt": "dino_woatt",
    "time_att": "time_att",
    "tracks": "tracks",
    "depth": "depth",
}


def fixture_flags(folder: Path) -> dict[str, Any]:
    """ReleaseConfig flags from ``meta.json``'s ``constructor`` (empty: the released ones)."""
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return {}
    ctor = json.loads(meta_path.read_text()).get("constructor") or {}
    flags = {_FLAG_NAMES[k]: bool(v) for k, v in ctor.items() if k in _FLAG_NAMES}
    if ctor.get("target_feature_dim"):
        flags["dino_dim"] = int(ctor["target_feature_dim"])
    return flags


def fixture_checkpoint(folder: Path) -> Path:
    """The folder's checkpoint: the file ``meta.json`` names (``checkpoint``, its first word),
    else its only ``*.pth``."""
    meta_path = folder / "meta.json"
    if meta_path.is_file():
        named = str(json.loads(meta_path.read_text()).get("checkpoint") or "").split()
        if named and (folder / named[0]).is_file():
            return folder / named[0]
    found = sorted(folder.glob("*.pth"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{folder}: expected one release checkpoint (*.pth), found {[p.name for p in found]}"
        )
    return found[0]


def fixture_parity(folder: str | Path) -> dict[str, Any]:
    """Largest |ours - release| over every case and output, through both user paths: the
    release file loaded directly (``ckpt=moseg.pth``) and after ``moseg import-release``."""
    folder = Path(folder)
    cases = sorted(folder.glob("*.npz"))
    if not cases:
        raise FileNotFoundError(f"{folder}: no *.npz cases")
    ckpt, flags = fixture_checkpoint(folder), fixture_flags(folder)
    direct = load_classifier_checkpoint(ckpt, release_flags=flags).net
    with tempfile.TemporaryDirectory() as tmp:
        imported_path = Path(tmp) / "imported.ckpt"
        import_release(ckpt, imported_path, flags=flags)
        imported = load_classifier_checkpoint(imported_path).net
    worst = {k: 0.0 for k in OUTPUT_KEYS}
    per_case = []
    for path in cases:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
        batch = {k: torch.from_numpy(data[k]).float() for k in INPUT_KEYS if k in data}
        row: dict[str, Any] = {"case": path.name, "N": int(batch["traj"].shape[2])}
        row["T"] = int(batch["traj"].shape[3])
        for net in (direct, imported):
            with torch.inference_mode():
                out = net(batch)
            for k in OUTPUT_KEYS:
                if k not in data:
                    continue
                ref = data[k].astype(np.float64)
                got = out[k].double().numpy().reshape(ref.shape)
                d = float(np.max(np.abs(got - ref))) if ref.size else 0.0
                if not np.isfinite(d):
                    d = float("inf")
                worst[k] = max(worst[k], d)
                row[k] = max(row.get(k, 0.0), d)
        per_case.append(row)
    return {
        "release_forward_max_abs_diff": max(worst.values()),
        "cases": len(cases),
        "max_abs_diff_by_output": worst,
        "by_case": per_case,
        "checkpoint": str(ckpt),
    }
