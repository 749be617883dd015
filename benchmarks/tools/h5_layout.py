"""How to lay out contract files: one file per sequence or shards, which compression, which chunks.

Measures, on synthetic clips of the default training size (24 frames, 2000 tracks, 256x256):
- bytes per clip on disk,
- write time per clip,
- random-access read time of one training sample: the per-track arrays a sample needs
  (tracks, visibility, confidence, query_frame, label, track_depth, features), read whole, or as
  a random subset of tracks, or as a temporal crop,
for per-sequence files (opened per sample, as a worker with no handle cache does) and shards of
many sequences (groups in one file, kept open). Prints a table and, last, a JSON line.

    python benchmarks/tools/h5_layout.py [--clips 40] [--reads 400]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from moseg.datasets.synthetic import SynthConfig, generate_clip
from moseg.io import SequenceFile, Storage, write_sequence

SAMPLE_FIELDS = (
    "tracks",
    "visibility",
    "confidence",
    "query_frame",
    "label",
    "track_depth",
    "features",
)

VARIANTS = {
    "none": Storage(compression=None, checksum=False),
    "none+crc": Storage(compression=None, checksum=True),
    "lzf+crc": Storage(compression="lzf", checksum=True),
    "gzip1+crc": Storage(compression="gzip", compression_opts=1, checksum=True),
    "gzip4+crc": Storage(compression="gzip", compression_opts=4, checksum=True),
    "lzf+crc chunk512": Storage(compression="lzf", checksum=True, track_chunk=512),
}


def _drop_caches() -> bool:
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def _write_shard(path: Path, seqs, storage: Storage) -> None:
    with h5py.File(path, "w", libver=("v110", "latest")) as f:
        for s in seqs:
            g = f.create_group(s.name)
            for name, arr in s.arrays().items():
                g.create_dataset(name, data=arr, **storage.dataset_kwargs(name, arr.shape))


def _read_sample(get, rng, mode: str, T: int) -> None:
    if mode == "whole":
        for k in SAMPLE_FIELDS:
            get(k, ())
    elif mode == "subset":  # 512 random tracks (sorted indices, as h5py requires)
        n = get("label", ()).shape[0]
        idx = np.sort(rng.choice(n, size=min(512, n), replace=False))
        for k in SAMPLE_FIELDS:
            get(k, idx)
    elif mode == "crop":  # 12 consecutive frames, all tracks
        t0 = int(rng.integers(0, T - 12 + 1))
        for k in ("tracks", "visibility", "confidence", "track_depth"):
            get(k, np.s_[:, t0 : t0 + 12])
        for k in ("query_frame", "label", "features"):
            get(k, ())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=40)
    ap.add_argument("--reads", type=int, default=400)
    ap.add_argument("--dir", default=None, help="where to write (default: a temp folder)")
    args = ap.parse_args()

    cfg = SynthConfig.from_dict({"realistic": {"enabled": True}})
    seqs = [generate_clip(cfg, [7, i], name=f"clip{i:04d}").sequence for i in range(args.clips)]
    T = seqs[0].num_frames
    base = Path(args.dir or tempfile.mkdtemp(prefix="moseg-h5layout-"))
    cold = _drop_caches()
    results = {}
    print(
        f"{args.clips} clips, {T} frames, {seqs[0].num_tracks} tracks, {args.reads} reads each;"
        f" page cache {'dropped before reads' if cold else 'warm (cannot drop caches here)'}"
    )
    print(
        f"{'variant':<18} {'layout':<6} {'MB/clip':>8} {'write ms':>9} "
        f"{'whole ms':>9} {'subset ms':>10} {'crop ms':>8}"
    )
    for vname, storage in VARIANTS.items():
        for layout in ("file", "shard"):
            d = base / f"{vname.replace(' ', '_').replace('+', '_')}_{layout}"
            d.mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            if layout == "file":
                paths = [write_sequence(d / f"{s.name}.h5", s, storage) for s in seqs]
            else:
                shard = d / "shard.h5"
                _write_shard(shard, seqs, storage)
            write_ms = (time.perf_counter() - t0) * 1000 / len(seqs)
            size = sum(p.stat().st_size for p in d.iterdir()) / len(seqs) / 1e6
            row = {"mb_per_clip": size, "write_ms": write_ms}
            for mode in ("whole", "subset", "crop"):
                rng = np.random.default_rng(0)
                _drop_caches()
                t0 = time.perf_counter()
                if layout == "file":
                    for _ in range(args.reads):
                        p = paths[int(rng.integers(len(paths)))]
                        with SequenceFile(p) as f:
                            _read_sample(lambda k, i, f=f: f.read(k, i), rng, mode, T)
                else:
                    with h5py.File(shard, "r") as f:
                        names = list(f)
                        for _ in range(args.reads):
                            g = f[names[int(rng.integers(len(names)))]]
                            _read_sample(lambda k, i, g=g: g[k][i], rng, mode, T)
                row[f"{mode}_ms"] = (time.perf_counter() - t0) * 1000 / args.reads
            results[f"{vname}|{layout}"] = row
            print(
                f"{vname:<18} {layout:<6} {size:8.2f} {write_ms:9.1f} {row['whole_ms']:9.2f} "
                f"{row['subset_ms']:10.2f} {row['crop_ms']:8.2f}"
            )
    if args.dir is None:
        shutil.rmtree(base)
    print(json.dumps({"h5_layout": results, "page_cache_dropped": cold}))


if __name__ == "__main__":
    main()
