"""A benchmark: where its sequences are, how to read their ground truth, how to score them.

One yaml per benchmark (``moseg/conf/bench/<id>.yaml``) fills :class:`BenchSpec`; the reader is
chosen
by the data ``format`` (a ``moseg.datasets.davis`` layout), never by the benchmark's name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from moseg.config import to_plain
from moseg.datasets.common import InputError
from moseg.datasets.davis import (
    LAYOUTS,
    GroundTruth,
    LayoutOptions,
    list_sequences,
    read_masks,
    sequence_dirs,
)
from moseg.metrics import PROTOCOLS, get_protocol
from moseg.prep.frames import FrameSpec, list_frame_files

log = logging.getLogger(__name__)


@dataclass
class BenchSpec:
    """The settings of ``moseg/conf/bench/<id>.yaml`` (see ``moseg/conf/bench/davis2016.yaml``)."""

    id: str
    format: str
    root: Path
    split: str | None = None
    sequences: list[str] | None = None
    protocol: str = "mos"
    skip_first_last: bool | None = None  # None: the protocol's own setting
    official_decay_bins: bool | None = None
    max_objects: int = 20
    layout: dict[str, Any] = field(default_factory=dict)
    frames: dict[str, Any] = field(default_factory=dict)
    generate: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.format not in LAYOUTS:
            raise InputError(f"bench {self.id}: format must be one of {LAYOUTS}, not {self.format}")
        if self.protocol not in PROTOCOLS:
            raise InputError(f"bench {self.id}: protocol must be one of {sorted(PROTOCOLS)}")
        proto = get_protocol(self.protocol)
        if self.skip_first_last is None:
            self.skip_first_last = proto.skip_first_last
        if self.official_decay_bins is None:
            self.official_decay_bins = proto.official_decay_bins
        self.root = Path(self.root)
        self.options = LayoutOptions.from_dict(self.layout)
        self.spec = FrameSpec.from_dict(self.frames or {})

    @classmethod
    def from_cfg(cls, cfg: Any) -> BenchSpec:
        d = dict(to_plain(cfg))
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise InputError(f"bench {d.get('id')}: unknown settings {sorted(unknown)}")
        return cls(**d)

    @property
    def raw_split(self) -> str | None:
        """The split the readers need to find a sequence's folder (FBMS only)."""
        return self.split if self.format == "fbms59" else None

    def ensure(self) -> None:
        """Make a generated benchmark's tree on first use; check that the root exists."""
        if self.generate:
            from moseg.evaluation.synthetic import check_synthetic_bench, write_synthetic_bench

            if not self.root.exists():
                write_synthetic_bench(self.root, **self.generate)
            check_synthetic_bench(self.root, self.generate)
        if not self.root.exists():
            raise InputError(
                f"bench {self.id}: root {self.root} does not exist. Put the dataset there or set "
                f"paths.data_dir=... / bench.root=... (docs/benchmarks.md)"
            )

    def list(self) -> list[str]:
        """The sequences to evaluate: ``sequences`` (each must exist), else all of the split."""
        found = list_sequences(self.format, self.root, self.split, options=self.options)
        if self.sequences is None:
            if not found:
                raise InputError(f"bench {self.id}: no sequences under {self.root}")
            return found
        missing = [s for s in self.sequences if s not in set(found)]
        if missing:
            raise InputError(
                f"bench {self.id}: sequence(s) {missing} not found under {self.root} "
                f"(split {self.split}; found {len(found)})"
            )
        return list(self.sequences)

    def frame_names(self, seq: str) -> list[str]:
        """Stems of the frames the spec keeps (the names of the mask files, ``<stem>.png``)."""
        frames_dir, _ = sequence_dirs(
            self.format, self.root, seq, split=self.raw_split, options=self.options
        )
        files, _ = list_frame_files(frames_dir)
        return [Path(files[int(i)]).stem for i in self.spec.select(len(files))]

    def ground_truth(self, seq: str) -> GroundTruth:
        """Masks ``[T, H, W]`` of the frames the spec keeps, at their original size."""
        return read_masks(
            self.format, self.root, seq, self.spec, split=self.raw_split, options=self.options
        )

    def notes(self) -> list[str]:
        out = []
        s = self.spec
        if s.start or s.interval != 1 or s.max_frames is not None:
            out.append(
                f"frames subset (start {s.start}, interval {s.interval}, max {s.max_frames}): "
                "scores cover only these frames and are not comparable with published ones"
            )
        if s.longest_side is not None:
            out.append(
                f"pipeline ran at longest side {s.longest_side}; masks were upsampled to the "
                "original size for scoring"
            )
        return out


def scored_frames(gt: GroundTruth, skip_first_last: bool) -> np.ndarray:
    """Indices of the frames that count: annotated ones (and not the first or last frame of the
    sequence when ``skip_first_last``)."""
    keep = gt.annotated.copy()
    if skip_first_last and len(keep) > 2:
        keep[0] = keep[-1] = False
    return np.flatnonzero(keep)
