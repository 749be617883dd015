"""Overlay pictures of the worst sequences of an ``evaluate.py`` run (the README's examples).

For each of the ``--worst`` sequences with the lowest J&F, three frames (first, middle, last)
side by side: the predicted mask filled in red, the ground truth outlined in green, the frame's
J in the corner. Written as ``<out>/worst-<k>-<sequence>.jpg`` at ``--width`` px per frame.

    python benchmarks/tools/worst_overlays.py outputs/evaluate/davis2016_moving/<run> \
        [--worst 3] [--out docs/images]

Not part of ``make bench`` (it prints no figure); it only reads the run's masks and metrics.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from moseg.utils.atomic import atomic_write_bytes


def panel(
    frame: np.ndarray, pred: np.ndarray, gt: np.ndarray, label: str, width: int
) -> np.ndarray:
    out = frame.copy()
    red = np.zeros_like(out)
    red[..., 2] = 255
    m = pred > 0
    out[m] = (0.55 * out[m] + 0.45 * red[m]).astype(np.uint8)
    contours, _ = cv2.findContours(
        (gt > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
    )
    cv2.drawContours(out, contours, -1, (0, 255, 0), 3)
    h = round(out.shape[0] * width / out.shape[1])
    out = cv2.resize(out, (width, h), interpolation=cv2.INTER_AREA)
    font = cv2.FONT_HERSHEY_SIMPLEX
    (tw, th), _ = cv2.getTextSize(label, font, 0.5, 1)
    cv2.rectangle(out, (0, 0), (tw + 10, th + 12), (0, 0, 0), -1)
    cv2.putText(out, label, (5, th + 6), font, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="an evaluate.py run folder (holds metrics.json)")
    ap.add_argument("--worst", type=int, default=3)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--out", type=Path, default=Path("docs/images"))
    a = ap.parse_args()
    metrics_path = a.run / "metrics.json"
    if not metrics_path.is_file():
        raise SystemExit(f"{metrics_path}: not found (is {a.run} an evaluate.py run folder?)")
    res = json.loads(metrics_path.read_text())
    rows = sorted(res["sequences"], key=lambda r: r["JF"])[: a.worst]
    root = Path(res["config"]["bench"]["root"])  # the dataset the run scored (as it was given)
    if not root.is_absolute():
        root = Path(res["config"]["paths"]["root_dir"]) / root
    a.out.mkdir(parents=True, exist_ok=True)
    for k, row in enumerate(rows, 1):
        seq = row["sequence"]
        per = res["per_frame"][seq]
        names, jf = per["frames"], per.get("J_per_frame")
        picks = [0, len(names) // 2, len(names) - 1]
        tiles = []
        for i in picks:
            name = names[i]
            frame = cv2.imread(str(root / "JPEGImages" / "480p" / seq / f"{name}.jpg"))
            gt = cv2.imread(str(root / "Annotations" / "480p" / seq / f"{name}.png"), 0)
            pred = cv2.imread(str(Path(res["masks"]) / seq / f"{name}.png"), 0)
            if frame is None or gt is None or pred is None:
                raise SystemExit(f"{seq}/{name}: frame, ground truth or mask missing")
            j = f" J {jf[i]:.2f}" if jf is not None and len(jf) == len(names) else ""
            tiles.append(panel(frame, pred, gt, f"{seq} {name}{j}", a.width))
        img = np.concatenate(tiles, axis=1)
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
        if not ok:
            raise SystemExit(f"{seq}: cannot encode the picture")
        path = a.out / f"worst-{k}-{seq}.jpg"
        atomic_write_bytes(path, buf.tobytes())
        print(f"{path}  J&F {row['JF']:.3f}  (J {row['J']:.3f}, F {row['F']:.3f})")


if __name__ == "__main__":
    main()
