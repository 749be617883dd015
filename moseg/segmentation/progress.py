"""Where a ``moseg segment`` run is, per stage and per frame.

On a terminal (``progress=true``): a tqdm bar of the frames segmented, labelled with the chunk
and its stage (tracks, classify, densify, write masks), then a bar of the overlay's frames.
Without one (a log, a pipe): log lines, one when a stage starts, with its frames; then, in the
stages that go frame by frame (write masks, overlay), one every :data:`LOG_EVERY` seconds; one
per finished chunk with its seconds per stage, the frames done and the time left; one when the
overlay is encoded.
"""

from __future__ import annotations

import logging
import time

from tqdm import tqdm

log = logging.getLogger(__name__)

LOG_EVERY = 10.0  # seconds between two log lines of one stage (no terminal)
NAMES = {"preprocess": "tracks", "write_masks": "write masks"}  # record keys -> stage names


def _duration(s: float) -> str:
    return f"{s:.0f} s" if s < 90 else f"{s / 60:.1f} min"


class Progress:
    """Progress of one run over ``total`` frames; ``bars``: tqdm bars (a terminal), else log
    lines."""

    def __init__(self, total: int, bars: bool, every: float | None = None):
        self.total = total
        self.bars = bars
        self.every = LOG_EVERY if every is None else every
        self.t0 = time.perf_counter()
        self.bar = tqdm(total=total, desc="segment", unit="frame", disable=not bars)
        self.where = ""  # "chunk 2/7 (frames 88-183 of 600)"
        self.label = ""  # "chunk 2/7"
        self.name = ""
        self.count = 0
        self.size = 0
        self.started = self.last = self.chunk_t0 = self.t0
        self.skipped = 0  # frames already done by an earlier run (not in the time left)

    def chunk(self, c: int, n: int, a: int, b: int) -> None:
        """Chunk ``c`` of ``n`` starts: frames ``[a, b)``."""
        self.label = f"chunk {c + 1}/{n}"
        self.where = f"{self.label} (frames {a}-{b - 1} of {self.total})"
        self.chunk_t0 = time.perf_counter()

    def stage(self, name: str, frames: int) -> None:
        """A stage of ``frames`` frames starts (``tracks``, ``classify``, ``densify``, ``write
        masks``, ``overlay``, ...)."""
        now = time.perf_counter()
        self.name, self.size, self.count = name, frames, 0
        self.started = self.last = now
        if self.bars:
            self.bar.set_description_str(f"segment, {self.label}: {name}")
        else:
            log.info("%s%s: %d frames", f"{self.where}: " if self.where else "", name, frames)

    def step(self, n: int = 1) -> None:
        """``n`` more frames of the current stage are done."""
        self.count += n
        if self.bars:
            return
        now = time.perf_counter()
        if now - self.last >= self.every and self.count < self.size:
            self.last = now
            log.info(
                "%s%s: %d/%d frames (%s)",
                f"{self.where}: " if self.where else "",
                self.name,
                self.count,
                self.size,
                _duration(now - self.started),
            )

    def wrote(self) -> None:
        """One more frame's masks are written (the bar moves frame by frame)."""
        self.bar.update()
        self.step()

    def resumed(self, upto: int) -> None:
        """Frames below ``upto`` were segmented by an earlier run."""
        self.skipped = upto
        self.bar.update(upto - self.bar.n)

    def chunk_done(self, upto: int, seconds: dict[str, float]) -> None:
        """The chunk is written: frames below ``upto`` are done; ``seconds`` per stage."""
        self.bar.update(upto - self.bar.n)
        if self.bars:
            return
        now = time.perf_counter()
        done = upto - self.skipped
        left = (self.total - upto) * (now - self.t0) / max(done, 1)
        stages = ", ".join(f"{NAMES.get(k, k)} {v:.1f} s" for k, v in seconds.items())
        log.info(
            "%s: done in %s (%s); %d/%d frames segmented, %s elapsed, about %s left",
            self.where,
            _duration(now - self.chunk_t0),
            stages,
            upto,
            self.total,
            _duration(now - self.t0),
            _duration(left),
        )

    def close(self) -> None:
        self.bar.close()
        self.where = self.label = ""

    def frames(self, name: str, total: int) -> _Frames:
        """A stage after the chunks that goes frame by frame (``overlay``, ``objects``): a bar
        of its own on a terminal, else log lines."""
        return _Frames(self, name, total)


class _Frames:
    def __init__(self, progress: Progress, name: str, total: int):
        self.p = progress
        self.name = name
        self.total = total
        self.bar = tqdm(total=total, desc=name, unit="frame", disable=not progress.bars)
        progress.stage(name, total)

    def step(self) -> None:
        self.bar.update()
        self.p.step()

    def close(self, what: str = "") -> None:
        self.bar.close()
        if not self.p.bars:
            log.info(
                "%s: %d frames in %s%s",
                self.name,
                self.p.count,
                _duration(time.perf_counter() - self.p.started),
                f" ({what})" if what else "",
            )
