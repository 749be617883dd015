"""LightningDataModule over one or several data sources in the HDF5 contract.

A *source* (``moseg/conf/source/<name>.yaml``) is a folder of contract files with ``train``/``val``
sub-folders, a mixture weight and a :class:`~moseg.data.samples.SamplingSpec`. A *mixture*
(``data=<a>+<b>``, composed by :class:`moseg.config.MixtureSource`) is a set of sources. Training
draws a source by weight, then a file uniformly, then a sample with a seed derived from (run
seed, epoch, position): samples do not depend on the number of workers or processes.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from moseg.config import to_plain
from moseg.data.samplers import FixedSampler, MixtureSampler
from moseg.data.samples import Augment, FileCache, Sample, SamplingSpec, augment, read_sample
from moseg.io import MissingDepthError, SequenceFile, list_sequences, missing_depth_message

log = logging.getLogger(__name__)


class MissingSourceError(FileNotFoundError):
    pass


@dataclass
class Source:
    name: str
    root: Path
    weight: float
    spec: SamplingSpec
    train_split: str | None = "train"
    val_split: str | None = "val"
    make: str = ""  # the command that makes the data, for error messages
    prepare: Any = None  # a generator config: made on first use when absent (synthetic)

    @classmethod
    def from_cfg(cls, name: str, d: Mapping[str, Any]) -> Source:
        d = dict(d)
        return cls(
            name=name,
            root=Path(d["root"]),
            weight=float(d.get("weight", 1.0)),
            spec=SamplingSpec.from_dict(d.get("sampling", {})),
            train_split=d.get("train_split", "train"),
            val_split=d.get("val_split", "val"),
            make=str(d.get("make", "")),
            prepare=d.get("prepare"),
        )

    def generated(self, split: str) -> int | None:
        """How many clips of ``split`` the generator makes (``prepare.splits``); None for a
        converted source, or a split the generator does not make."""
        n = ((self.prepare or {}).get("splits") or {}).get(split)
        return None if n is None else int(n)

    def files(self, split: str) -> list[Path]:
        """The contract files of ``split`` this source trains or validates on: for a generated
        source exactly the clips its config names (``prepare.splits.<split>``; clips another
        config added to the folder are not used), else every ``*.h5`` in ``root/split``."""
        folder = self.root / split
        how = f"; make it with `{self.make}`" if self.make else ""
        n = self.generated(split)
        if n is not None:
            from moseg.datasets.synthetic import clip_name

            found = [folder / f"{clip_name(split, i)}.h5" for i in range(n)]
            missing = [p.name for p in found if not p.is_file()]
            if missing:
                raise MissingSourceError(
                    f"data source {self.name!r}: {len(missing)} of the {n} clips its config "
                    f"names are not in {folder} (e.g. {missing[0]}){how}"
                )
            return found
        found = list_sequences(folder) if folder.is_dir() else []
        if not found:
            raise MissingSourceError(
                f"data source {self.name!r}: no contract files (*.h5) in {folder}{how}"
            )
        return found


class DataManifestError(ValueError):
    """The files a run reads are not those it recorded; the message says which differ."""


def _entry(path: Path, folder: Path) -> dict[str, Any]:
    st = path.stat()
    return {
        "name": path.relative_to(folder).as_posix(),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
    }


def compare_manifests(recorded: Mapping[str, Any], current: Mapping[str, Any]) -> str:
    """How the files of ``current`` differ from ``recorded`` (both
    :meth:`TrackDataModule.data_manifest`), or ``""``: per source and split the files added,
    missing and changed (size or modification time; not checked for generated sources, whose
    clips are fixed by the generator's seed and settings, which it checks itself)."""
    old, new = recorded.get("sources") or {}, current.get("sources") or {}
    diffs = [f"data source {n!r} is new" for n in new if n not in old]
    diffs += [f"data source {n!r} is gone" for n in old if n not in new]

    def names(xs: list[str]) -> str:
        return ", ".join(xs[:3]) + (", ..." if len(xs) > 3 else "")

    for name in (n for n in new if n in old):
        was, now = old[name].get("splits") or {}, new[name]["splits"]
        for split in sorted(set(was) | set(now)):
            a = {e["name"]: e for e in was.get(split, [])}
            b = {e["name"]: e for e in now.get(split, [])}
            added = [k for k in b if k not in a]
            missing = [k for k in a if k not in b]
            changed = []
            if not new[name].get("generated"):
                stat = ("size", "mtime_ns")
                changed = [k for k in a if k in b and any(a[k].get(x) != b[k][x] for x in stat)]
            found = [
                f"{len(xs)} {what} ({names(xs)})"
                for xs, what in ((added, "added"), (missing, "missing"), (changed, "changed"))
                if xs
            ]
            if found:
                diffs.append(f"{name}/{split} in {new[name]['root']}: {', '.join(found)}")
    return "; ".join(diffs)


def depth_status(path: Path) -> tuple[bool, str]:
    """Whether the contract file at ``path`` gives the model depth (it has ``depth`` maps, whose
    kind and range convert it), and if not what its provenance says the depth was made with.
    Reads attributes and the list of datasets only."""
    with SequenceFile(path) as f:
        if f.has("depth"):
            return True, ""
        made_with = str((f.meta.provenance.get("depth") or {}).get("name", "?"))
        if f.has("track_depth"):
            made_with += "; it has track_depth but no depth maps, so no kind or range"
        elif made_with != "none":
            made_with += ", but none was stored"
        return False, made_with


class TrackDataset(Dataset):
    """Map-style dataset indexed by ``(file_index, seed)`` (from the samplers above)."""

    def __init__(
        self,
        files: list[Path],
        specs: list[SamplingSpec],
        aug: Augment | None = None,
        open_files: int = 32,
    ):
        self.files, self.specs, self.aug = files, specs, aug
        self.cache = FileCache(open_files)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, item: tuple[int, int]) -> Sample:
        i, seed = item
        rng = np.random.default_rng(seed)
        path = self.files[i]
        try:
            s = read_sample(self.cache.get(path), self.specs[i], rng)
        except (OSError, KeyError, ValueError) as e:
            raise RuntimeError(f"{path}: cannot read a training sample: {e}") from e
        return augment(s, self.aug, rng) if self.aug is not None else s


def _alloc(shape: tuple[int, ...], dtype: torch.dtype, fill: float = 0) -> torch.Tensor:
    """A tensor filled with ``fill``; inside a loader worker it is put in shared memory first,
    so sending it to the main process copies nothing (as torch's default collate does)."""
    t = torch.empty(shape, dtype=dtype)
    if get_worker_info() is not None:
        t.share_memory_()
    return t.fill_(fill)


def collate(samples: list[Sample], feature_dim: int = 0) -> dict[str, Any]:
    """Pad a list of samples to ``[B, N, T, ...]`` tensors; ``track_mask`` marks real tracks.

    Padding tracks are invisible with label -1; padded frames are invisible. A sample without
    depth or features gets zeros there and ``depth_valid``/``features_valid`` False."""
    B = len(samples)
    N = max(max(s.label.shape[0] for s in samples), 1)
    T = max(s.tracks.shape[1] for s in samples)
    C = feature_dim or max(
        (s.features.shape[1] for s in samples if s.features is not None), default=0
    )
    out = {
        "tracks": _alloc((B, N, T, 2), torch.float32),
        "visibility": _alloc((B, N, T), torch.bool),
        "confidence": _alloc((B, N, T), torch.float32),
        "depth": _alloc((B, N, T), torch.float32),
        "features": _alloc((B, N, C), torch.float16),  # the model casts
        "label": _alloc((B, N), torch.long, -1),
        "track_mask": _alloc((B, N), torch.bool),
        "query_frame": _alloc((B, N), torch.long, -1),  # window index of each track's query
        "image_size": torch.tensor([s.image_size for s in samples], dtype=torch.long),
        "depth_valid": torch.tensor([s.depth is not None for s in samples]),
        "features_valid": torch.tensor([s.features is not None for s in samples]),
        "name": [s.name for s in samples],
    }

    def put(key: str, index: tuple, a: np.ndarray) -> None:
        out[key][index] = torch.from_numpy(np.ascontiguousarray(a))

    for b, s in enumerate(samples):
        n, t = s.tracks.shape[:2]
        put("tracks", (b, slice(n), slice(t)), s.tracks)
        put("visibility", (b, slice(n), slice(t)), s.visibility)
        put("confidence", (b, slice(n), slice(t)), s.confidence)
        if s.depth is not None:
            put("depth", (b, slice(n), slice(t)), s.depth)
        if s.features is not None:
            if s.features.shape[1] != C:
                raise ValueError(
                    f"{s.name}: features have {s.features.shape[1]} channels, expected {C}"
                )
            put("features", (b, slice(n)), s.features)
        put("label", (b, slice(n)), s.label)
        out["track_mask"][b, :n] = True
        out["query_frame"][b, :n] = s.query_index
    return out


class TrackDataModule(L.LightningDataModule):
    """Train on a weighted mixture of sources; validate on each source's val split separately.

    ``sources`` maps a name to a source config (``moseg/conf/source/*.yaml``); a source with
    weight 0 is skipped entirely and need not exist."""

    def __init__(
        self,
        sources: Mapping[str, Mapping[str, Any]],
        feature_dim: int = 0,
        batch_size: int = 1,
        num_workers: int = 2,
        samples_per_epoch: int = 1000,
        val_repeats: int = 1,
        augment: Mapping[str, Any] | None = None,
        seed: int = 0,
        open_files: int = 32,
        pin_memory: bool = False,
        name: str = "",
    ):
        super().__init__()
        sources = to_plain(sources)
        augment = to_plain(augment)
        self.sources = [
            Source.from_cfg(n, c) for n, c in sources.items() if float(c.get("weight", 1)) > 0
        ]
        if not self.sources:
            raise ValueError("the data mixture has no source with a positive weight")
        self.feature_dim = int(feature_dim)
        for n, c in sources.items():
            fd = c.get("feature_dim")
            if float(c.get("weight", 1)) > 0 and fd is not None and int(fd) != self.feature_dim:
                raise ValueError(
                    f"data source {n!r} has {fd}-d semantic features but the mixture uses "
                    f"{self.feature_dim} (data.feature_dim); a mixture needs one width"
                )
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.samples_per_epoch = samples_per_epoch
        self.val_repeats = val_repeats
        self.aug = Augment.from_dict(dict(augment or {}))
        self.seed = seed
        self.open_files = open_files
        self.pin_memory = pin_memory
        self.name = name
        self.train_set: TrackDataset | None = None
        self.val_sets: dict[str, TrackDataset] = {}
        self._prepared = False

    # ------------------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Make sources that can be made here (synthetic scenes) when absent; rank 0 only."""
        if self._prepared:
            return
        self._prepared = True
        for s in self.sources:
            if s.prepare is None:
                continue
            # the generator keeps finished clips and checks its manifest, so a split left
            # incomplete by an interrupted run is finished rather than used half-made
            from moseg.datasets.synthetic import prepare

            log.info("making data source %r in %s", s.name, s.root)
            prepare(s.prepare)

    def trained_on(self) -> dict[str, Any]:
        """What the classifier sees per pass, recorded in its checkpoints so that inference
        cuts the same windows (:class:`moseg.inference.classify.ModelClassifier`): per source
        its weight, window length, frame stride and most tracks; overall ``window`` (the longest
        window), ``frame_stride`` (that of the source with the largest weight; the smaller
        stride on a tie) and ``max_tracks`` (the most tracks of any source)."""
        per = {
            s.name: {
                "weight": s.weight,
                "num_frames": s.spec.num_frames,
                "frame_stride": s.spec.frame_stride,
                "max_tracks": s.spec.max_tracks,
            }
            for s in self.sources
        }
        main = min(self.sources, key=lambda s: (-s.weight, s.spec.frame_stride))
        return {
            "sources": per,
            "window": max(s.spec.num_frames for s in self.sources),
            "frame_stride": main.spec.frame_stride,
            "max_tracks": max(s.spec.max_tracks for s in self.sources),
        }

    def data_manifest(self) -> dict[str, Any]:
        """The files this run reads, per source and split, with their size and modification
        time: ``{"version": 1, "sources": {name: {"root", "generated", "splits": {split:
        [{"name", "size", "mtime_ns"}]}}}}`` (names relative to ``root/split``). The training
        run records it in its folder (``data_manifest.json``)."""
        sources = {}
        for s in self.sources:
            splits = {
                split: [_entry(p, s.root / split) for p in s.files(split)]
                for split in (s.train_split, s.val_split)
                if split
            }
            sources[s.name] = {
                "root": str(s.root),
                "generated": s.prepare is not None,
                "splits": splits,
            }
        return {"version": 1, "sources": sources}

    def check_sources(self) -> None:
        """Fail at once, naming the path and the command that makes it, if data is missing, and
        naming the file if its semantic features do not have the mixture's width."""
        for s in self.sources:
            for split in (s.train_split, s.val_split):
                if split:
                    files = s.files(split)
                    if files and self.feature_dim and s.spec.use_features:
                        self._check_feature_width(s.name, files[0])

    def check_depth(self, allow_missing: bool = False) -> list[str]:
        """For a model that uses depth: every source that samples depth
        (``sampling.use_depth``, the default) must have it in every train and val file, or
        the model silently sees zeros there. Raises :class:`~moseg.io.MissingDepthError` naming
        each such source and the fixes; with ``allow_missing`` returns the messages instead
        (the caller logs and records them). Opens each file once, reading no data. Modality
        dropout (``augment.drop_depth``) hides depth from samples on purpose and is not
        affected."""
        messages = []
        for s in self.sources:
            if not s.spec.use_depth:
                continue
            files = [p for split in (s.train_split, s.val_split) if split for p in s.files(split)]
            missing = []
            for p in files:
                ok, made_with = depth_status(p)
                if not ok:
                    missing.append((p, made_with))
            if not missing:
                continue
            made = sorted({m for _, m in missing})
            subject = f"data source {s.name!r}"
            if len(missing) < len(files):
                subject += f" ({len(missing)} of its {len(files)} files, e.g. {missing[0][0]})"
            if s.prepare is not None:  # made by the generator on first use
                convert = f"make it with data.sources.{s.name}.prepare.generator.save_depth=true"
            else:
                convert = "convert it with depth=depth_anything_v2"
                if s.make:
                    convert += f" (`{s.make} depth=depth_anything_v2`)"
            messages.append(
                missing_depth_message(
                    subject,
                    " / ".join(made),
                    [convert, "train with model.net.use_depth=false"],
                )
            )
        if messages and not allow_missing:
            raise MissingDepthError("\n".join(messages))
        for m in messages:
            log.warning("allow_missing_depth=true: %s", m)
        return messages

    def _check_feature_width(self, source: str, path: Path) -> None:
        with SequenceFile(path) as f:
            if not f.has("features"):
                return
            width = f.shape("features")[1]
            made_by = f.meta.provenance.get("features", {}).get("name", "?")
        if width != self.feature_dim:
            raise ValueError(
                f"{path}: has {width}-d semantic features ({made_by}), but data source "
                f"{source!r} is configured for {self.feature_dim}: set "
                f"data.feature_dim={width} data.sources.{source}.feature_dim={width}, or convert "
                "the data with the features the mixture expects"
            )

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is None:
            self.check_sources()
            files, specs = [], []
            for s in self.sources:
                f = s.files(s.train_split) if s.train_split else []
                files.append(f)
                specs += [s.spec] * len(f)
            self._train_sizes = [len(f) for f in files]
            self.train_set = TrackDataset(
                [p for f in files for p in f], specs, self.aug, self.open_files
            )
            for s in self.sources:
                if s.val_split:
                    vf = s.files(s.val_split)
                    # validation always takes the largest track count (fixed seeds, no aug)
                    spec = s.spec.fixed(s.spec.max_tracks)
                    self.val_sets[s.name] = TrackDataset(
                        vf, [spec] * len(vf), None, self.open_files
                    )
            log.info(
                "data %s: %s",
                self.name,
                ", ".join(
                    f"{s.name} (weight {s.weight:g}, {n} train clips)"
                    for s, n in zip(self.sources, self._train_sizes, strict=True)
                ),
            )

    def _loader(self, ds: TrackDataset, sampler: Sampler) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=self.num_workers,
            collate_fn=_Collate(self.feature_dim),
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        assert self.train_set is not None
        sampler = MixtureSampler(
            self._train_sizes,
            [s.weight for s in self.sources],
            self.samples_per_epoch,
            self.seed,
        )
        return self._loader(self.train_set, sampler)

    def val_dataloader(self) -> list[DataLoader]:
        return [
            self._loader(ds, FixedSampler(len(ds), self.val_repeats, self.seed + 1))
            for ds in self.val_sets.values()
        ]

    @property
    def val_names(self) -> list[str]:
        return [s.name for s in self.sources if s.val_split]

    def steps_per_epoch(self) -> int:
        return math.ceil(self.samples_per_epoch / self.batch_size)


class _Collate:
    """Picklable collate function (loader workers are spawned)."""

    def __init__(self, feature_dim: int):
        self.feature_dim = feature_dim

    def __call__(self, samples: list[Sample]) -> dict[str, Any]:
        return collate(samples, self.feature_dim)
