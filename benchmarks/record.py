"""Figures never copied by hand: benchmark scripts keep what they measure in ``docs/figures/``,
and every table of those figures in the README and ``docs/`` is rendered from there.

    python benchmarks/record.py SCRIPT [ARGS...]   # run it, store docs/figures/<stem>.json
    python benchmarks/record.py --docs             # re-render every table (--readme: the same)
    python benchmarks/record.py --check            # exit 1 if a rendered table is out of date

Every benchmark script prints one JSON object of named figures as its last stdout line. A figure
script of ``make bench`` (``benchmarks/<folder>/*.py``) run without arguments stores it itself
through :func:`store`; run with arguments it stores nothing (that is not the documented
measurement), and ``record.py SCRIPT ARGS`` stores it with the arguments in the command. A
record is ``docs/figures/<script stem>.json`` = ``{"command", "date", "machine", "figures"}``
(``machine``: CPU count and load average as the run ended), written atomically. Nothing is
stored when the script fails, prints no JSON object, or prints one whose figures are all empty
(a benchmark that skipped, e.g. without ``../shared/data``). Storing then re-renders every
table (``--no-readme`` skips that).

What is rendered, and where:

- the README's headline table, between ``<!-- figures:begin -->`` and ``<!-- figures:end -->``,
  from :data:`HEADLINE`: one row per figure, each naming the command that measured it;
- a block per entry of :data:`BLOCKS`, between ``<!-- figures:NAME:begin -->`` and
  ``<!-- figures:NAME:end -->`` in its doc: the command and date of one script's record, then a
  table of its figures (:class:`Rows`) or of its per-sequence scores (:class:`PerSequence`);
- an inline figure of :data:`INLINE` in running text, between ``<!-- figure:NAME -->`` and
  ``<!-- /figure -->``.

A missing record or figure is rendered as "not measured" (or "not recorded yet") with the command
that measures it. ``tests/test_readme.py`` checks that the README and docs hold exactly what this
renders, so editing a rendered number by hand fails the tests.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
FIGURES_DIR = ROOT / "docs" / "figures"
README = ROOT / "README.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"
# set by record() for the script it runs: that script's own store() then leaves the storing to
# record(), which knows the arguments
RECORDING_ENV = "MOSEG_RECORDING"

# (script that measures it, its arguments to show when unmeasured, figure key in its JSON,
#  label, format of the value)
HEADLINE: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "benchmarks/davis2016/davis_moving.py",
        "",
        "davis2016_jf",
        "J&F on DAVIS 2016 val (20): weight-free CPU path (target 0.62)",
        "{:.3f}",
    ),
    (
        "benchmarks/davis2016/davis_moving.py",
        "",
        "davis_moving_jf",
        "J&F on DAVIS16-Moving (16): weight-free CPU path (target 0.60; the project's 0.70)",
        "{:.3f}",
    ),
    (
        "benchmarks/davis2016/davis_moving.py",
        "",
        "pipeline_s_per_frame_davis",
        "seconds per frame of that whole pipeline (854x480, cold cache)",
        "{:.2f}",
    ),
    (
        "benchmarks/release/parity.py",
        "",
        "release_forward_max_abs_diff",
        "`model=release` against the release's golden outputs: largest difference",
        "{:.1e}",
    ),
    (
        "benchmarks/tools/track_ap.py",
        "CKPT",
        "track_ap",
        "track AP on held-out synthetic scenes, of the checkpoint in the command",
        "{:.3f}",
    ),
)


class Row(NamedTuple):
    """One figure of a record: ``format.format(value * scale)``; a dict of numbers is shown as
    ``name value, ...``."""

    key: str
    label: str
    format: str
    scale: float = 1.0


class Rows(NamedTuple):
    """A block: one script's figures, one table row each."""

    script: str
    rows: tuple[Row, ...]


class PerSequence(NamedTuple):
    """A block: the per-sequence scores a script stores under ``key`` as
    ``{sequence: {"J", "F", "JF"}}``, x100, then the mean row from ``mean`` (J, F, J&F keys)."""

    script: str
    key: str
    mean: tuple[str, str, str]
    mean_label: str


# name -> (doc, what it shows). A block appears exactly once, in its doc.
BLOCKS: dict[str, tuple[str, Rows | PerSequence]] = {
    "davis_moving": (
        "docs/real-video.md",
        Rows(
            "benchmarks/davis2016/davis_moving.py",
            (
                Row("davis2016_j", "DAVIS 2016 val (20): J", "{:.1f}", 100),
                Row("davis2016_f", "DAVIS 2016 val (20): F", "{:.1f}", 100),
                Row("davis2016_jf", "DAVIS 2016 val (20): J&F (target 62)", "{:.1f}", 100),
                Row("davis_moving_j", "DAVIS16-Moving (16): J", "{:.1f}", 100),
                Row("davis_moving_f", "DAVIS16-Moving (16): F", "{:.1f}", 100),
                Row("davis_moving_jf", "DAVIS16-Moving (16): J&F (target 60)", "{:.1f}", 100),
                Row(
                    "pipeline_s_per_frame_davis",
                    "seconds per frame, whole pipeline (target <= 0.5)",
                    "{:.2f}",
                ),
                Row("davis_moving_stage_s_per_frame", "seconds per frame by stage", "{:.2f}"),
                Row("davis_moving_frames", "frames (854x480, all 20 sequences)", "{:d}"),
                Row("davis_moving_minutes", "minutes for the whole run (limit 30)", "{:.1f}"),
            ),
        ),
    ),
    "davis_click": (
        "docs/segment.md",
        Rows(
            "benchmarks/segment/davis_click.py",
            (
                Row("davis_click_j", "J", "{:.1f}", 100),
                Row("davis_click_f", "F", "{:.1f}", 100),
                Row("davis_click_jf", "J&F", "{:.1f}", 100),
                Row("davis_click_s_per_frame", "seconds per frame", "{:.2f}"),
                Row("davis_click_sequences", "sequences", "{:d}"),
            ),
        ),
    ),
    "davis_moving_sequences": (
        "docs/real-video.md",
        PerSequence(
            "benchmarks/davis2016/davis_moving.py",
            "davis_moving_by_sequence",
            ("davis_moving_j", "davis_moving_f", "davis_moving_jf"),
            "DAVIS16-Moving (16)",
        ),
    ),
    "davis2016_sequences": (
        "docs/real-video.md",
        PerSequence(
            "benchmarks/davis2016/davis_moving.py",
            "davis2016_by_sequence",
            ("davis2016_j", "davis2016_f", "davis2016_jf"),
            "DAVIS 2016 val (20)",
        ),
    ),
    "davis_click_sequences": (
        "docs/segment.md",
        PerSequence(
            "benchmarks/segment/davis_click.py",
            "davis_click_by_sequence",
            ("davis_click_j", "davis_click_f", "davis_click_jf"),
            "DAVIS 2016 val (20)",
        ),
    ),
    "preprocess_speed": (
        "docs/figures.md",
        Rows(
            "benchmarks/prep/preprocess_speed.py",
            (
                Row("preprocess_s_per_frame_davis", "seconds per frame (target <= 0.2)", "{:.3f}"),
                Row("preprocess_track_s_per_frame", "of which tracking", "{:.3f}"),
                Row("preprocess_features_s_per_frame", "of which appearance features", "{:.3f}"),
                Row("preprocess_tracks", "tracks written", "{:,}"),
                Row("preprocess_frames", "frames", "{:d}"),
                Row(
                    "tracker_mask_consistency_davis",
                    "visible points on the object exactly when their query point is",
                    "{:.3f}",
                ),
                Row(
                    "tracker_mask_consistency_davis_object",
                    "the same, tracks that start on the object",
                    "{:.3f}",
                ),
            ),
        ),
    ),
    "tracker_accuracy": (
        "docs/figures.md",
        Rows(
            "benchmarks/prep/tracker_accuracy.py",
            (
                Row(
                    "tracker_median_err_px",
                    "median error, points visible in truth and output (px; target <= 1.5)",
                    "{:.2f}",
                ),
                Row(
                    "tracker_median_err_px_all_gt_visible",
                    "median error, every truly visible point (px)",
                    "{:.2f}",
                ),
                Row("tracker_visibility_acc", "visibility accuracy (target >= 0.9)", "{:.3f}"),
                Row("tracker_delta_avg", "TAP-Vid delta_avg", "{:.3f}"),
                Row("tracker_clips", "clips (256x256, 24 frames)", "{:d}"),
            ),
        ),
    ),
    "synthetic_speed": (
        "docs/figures.md",
        Rows(
            "benchmarks/perf/synthetic_speed.py",
            (
                Row("synthetic_clips_per_s", "clips per second", "{:.2f}"),
                Row("synthetic_200_clips_s", "seconds for 200 clips (target <= 120)", "{:.1f}"),
                Row("synthetic_workers", "processes", "{:d}"),
            ),
        ),
    ),
    "train_speed": (
        "docs/figures.md",
        Rows(
            "benchmarks/perf/train_speed.py",
            (
                Row("train_step_s_paper_cpu", "training step, fp32 (s; target <= 1.0)", "{:.2f}"),
                Row(
                    "train_step_speedup_vs_release",
                    "times faster than the release's 11.4 s (target 10)",
                    "{:.1f}",
                ),
                Row(
                    "train_step_s_paper_cpu_bf16", "training step, CPU bf16 autocast (s)", "{:.2f}"
                ),
                Row("train_clips_per_s_b8_cpu", "batch 8, fp32 (clips/s)", "{:.2f}"),
                Row(
                    "loader_samples_per_s",
                    "training loader, 2 workers (samples/s; target >= 50)",
                    "{:.1f}",
                ),
                Row("loader_mean_tracks", "tracks per loaded sample", "{:.0f}"),
                Row("paper_params", "parameters of the paper model", "{:,}"),
                Row(
                    "train_clips_per_s_gpu_bf16",
                    "GPU, bf16, 4096 tracks x 24 frames, batch 16 (clips/s)",
                    "{:.2f}",
                ),
                Row("train_peak_gpu_mem_gb", "its peak GPU memory (GB)", "{:.2f}"),
            ),
        ),
    ),
    "sam2_speed": (
        "docs/figures.md",
        Rows(
            "benchmarks/sam2/sam2_speed.py",
            (
                Row("sam2_s_per_frame_gpu", "seconds per frame, 24 frames at 1024 px", "{:.2f}"),
                Row("sam2_s_per_object_gpu", "seconds per object", "{:.2f}"),
                Row("sam2_peak_gpu_mem_gb", "peak GPU memory (GB)", "{:.2f}"),
            ),
        ),
    ),
    "stream_memory": (
        "docs/segment.md",
        Rows(
            "benchmarks/segment/stream_memory.py",
            (
                Row("segment_peak_rss_mb_short_chunked", "96 frames, chunk 48 (MB)", "{:.0f}"),
                Row("segment_peak_rss_mb_long_chunked", "384 frames, chunk 48 (MB)", "{:.0f}"),
                Row(
                    "segment_rss_ratio_long_over_short_chunked",
                    "384 frames over 96 frames",
                    "{:.2f}",
                ),
                Row("segment_peak_rss_mb_long_one_chunk", "384 frames in one chunk (MB)", "{:.0f}"),
            ),
        ),
    ),
    "parity": (
        "docs/release-checkpoint.md",
        Rows(
            "benchmarks/release/parity.py",
            (
                Row("release_forward_max_abs_diff", "largest difference, all outputs", "{:.1e}"),
                Row("release_max_abs_diff_by_output", "largest difference per output", "{:.1e}"),
                Row("cases", "cases", "{:d}"),
            ),
        ),
    ),
}

# name -> (script, figure key, format, scale): one figure in running text
INLINE: dict[str, tuple[str, str, str, float]] = {
    "davis_jf": ("benchmarks/davis2016/davis_moving.py", "davis_moving_jf", "{:.1f}", 100),
    "davis2016_jf": ("benchmarks/davis2016/davis_moving.py", "davis2016_jf", "{:.1f}", 100),
    "click_jf": ("benchmarks/segment/davis_click.py", "davis_click_jf", "{:.1f}", 100),
    "davis_s_per_frame": (
        "benchmarks/davis2016/davis_moving.py",
        "pipeline_s_per_frame_davis",
        "{:.2f}",
        1,
    ),
    "parity_max": ("benchmarks/release/parity.py", "release_forward_max_abs_diff", "{:.1e}", 1),
}


def figures_path(script: str | Path, figures_dir: Path = FIGURES_DIR) -> Path:
    return Path(figures_dir) / f"{Path(script).stem}.json"


def _shown(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def _empty(figures: Any) -> bool:
    """No figure to keep: not a dict, an empty one, or one holding only nulls (a skipped run)."""
    return not isinstance(figures, dict) or all(v is None for v in figures.values())


def store(
    script: str | Path,
    args: list[str],
    figures: dict[str, Any],
    figures_dir: Path = FIGURES_DIR,
    root: Path = ROOT,
    *,
    render: bool = True,
    by_script: bool = True,
) -> Path | None:
    """Keep ``figures`` measured by ``script`` run with ``args``: write
    ``<figures_dir>/<stem>.json`` atomically, then (``render``) re-render every table. Returns the
    file written, or None when nothing was kept: a skipped run, a figure script run with
    arguments (``by_script``: the script itself calls this), or one run by :func:`record`."""
    from moseg.utils.atomic import atomic_write_text

    if _empty(figures):
        print(f"{script}: no figures (skipped?): nothing recorded", file=sys.stderr)
        return None
    if by_script and os.environ.get(RECORDING_ENV):
        return None  # record() stores it, with the arguments
    if by_script and args:
        print(
            f"{script}: run with arguments, so not recorded in docs/figures/ "
            "(python benchmarks/record.py SCRIPT ARGS... records such a run)",
            file=sys.stderr,
        )
        return None
    path = Path(script)
    entry = {
        "command": shlex.join(["python", _shown(path, root), *args]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        # how busy the machine was as the run ended: times measured under load are slower
        "machine": {"cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 1)},
        "figures": figures,
    }
    out = figures_path(path, figures_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(entry, indent=2) + "\n")
    print(f"recorded {len(figures)} figure(s) in {out}", file=sys.stderr)
    if render:
        changed = update_all(root, figures_dir)
        print(f"re-rendered: {', '.join(changed) or 'nothing changed'}", file=sys.stderr)
    return out


def run_script(script: Path, args: list[str]) -> tuple[int, dict | None, str]:
    """Run ``script`` with ``args``, echoing its output; return (exit code, figures, why not)."""
    env = {**os.environ, RECORDING_ENV: "1"}
    proc = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True, bufsize=1, env=env
    )
    last = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        sys.stdout.write(line)
        if line.strip():
            last = line.strip()
    rc = proc.wait()
    if rc:
        return rc, None, f"exit code {rc}"
    try:
        figures = json.loads(last)
    except ValueError:
        return 1, None, "its last line is not JSON"
    if _empty(figures):
        return 1, None, "it printed no figures (skipped?)"
    return 0, figures, ""


def record(
    script: str | Path, args: list[str], figures_dir: Path = FIGURES_DIR, root: Path = ROOT
) -> Path | None:
    """Run a benchmark script and store its figures; return the file written, or None."""
    path = Path(script)
    if not path.is_file() and (root / path).is_file():
        path = root / path
    if not path.is_file():
        print(f"error: {script}: no such script", file=sys.stderr)
        return None
    rc, figures, why = run_script(path, args)
    if figures is None:
        print(f"error: {script}: nothing recorded: {why}", file=sys.stderr)
        return None
    return store(path, args, figures, figures_dir, root, render=False, by_script=False)


def load(figures_dir: Path = FIGURES_DIR) -> dict[str, dict]:
    """Every stored record, by script stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(figures_dir).glob("*.json"))}


# ----------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------
def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _format(value: Any, fmt: str, scale: float = 1.0) -> str | None:
    """``value`` shown with ``fmt`` (a dict of numbers as ``name value, ...``); None when it is
    missing or not a number."""
    if isinstance(value, dict) and value and all(_number(v) for v in value.values()):
        return ", ".join(f"{k} {fmt.format(v * scale)}" for k, v in value.items())
    if not _number(value):
        return None
    if scale != 1:
        value = value * scale
    return fmt.format(value)


def render_table(figures_dir: Path = FIGURES_DIR) -> str:
    """The headline table, as it must appear between the README's markers."""
    records = load(figures_dir)
    rows = ["| figure | value | measured by |", "|---|---|---|"]
    for script, hint, key, label, fmt in HEADLINE:
        rec = records.get(Path(script).stem)
        value = None if rec is None else rec.get("figures", {}).get(key)
        if _number(value):
            shown = f"**{fmt.format(value)}**"
            how = f"`{rec['command']}`, {rec['date']}"
        else:
            shown = "not measured"
            how = f"`python benchmarks/record.py {' '.join(filter(None, (script, hint)))}`"
        rows.append(f"| {label} | {shown} | {how} |")
    return "\n".join(rows)


def _caption(script: str, rec: dict | None) -> str:
    json_path = f"docs/figures/{Path(script).stem}.json"
    if rec is None:
        return f"Not recorded yet: `python {script}` records it in `{json_path}`."
    machine = rec.get("machine") or {}
    load = ""
    if "load_1min" in machine:
        load = f", load average {machine['load_1min']} on {machine.get('cpus')} CPUs"
    return f"Recorded by `{rec['command']}`, {rec['date']}{load} (`{json_path}`)."


def render_block(name: str, figures_dir: Path = FIGURES_DIR) -> str:
    """The block ``name`` of :data:`BLOCKS`, as it must appear between its markers."""
    _, spec = BLOCKS[name]
    rec = load(figures_dir).get(Path(spec.script).stem)
    figures = {} if rec is None else rec.get("figures", {})
    lines = [_caption(spec.script, rec), ""]
    if isinstance(spec, Rows):
        lines += ["| figure | value |", "|---|---|"]
        for row in spec.rows:
            shown = _format(figures.get(row.key), row.format, row.scale)
            lines.append(f"| {row.label} | {'not measured' if shown is None else shown} |")
        return "\n".join(lines)
    lines += ["| sequence | J | F | J&F |", "|---|---|---|---|"]
    by_seq = figures.get(spec.key)
    if not isinstance(by_seq, dict) or not by_seq:
        lines.append("| not measured | | | |")
        return "\n".join(lines)
    for seq, s in by_seq.items():
        cells = [_format(s.get(k), "{:.1f}", 100) or "-" for k in ("J", "F", "JF")]
        lines.append(f"| {seq} | {' | '.join(cells)} |")
    mean = [_format(figures.get(k), "{:.1f}", 100) or "-" for k in spec.mean]
    lines.append(f"| **{spec.mean_label}** | {' | '.join(f'**{m}**' for m in mean)} |")
    return "\n".join(lines)


def render_inline(name: str, figures_dir: Path = FIGURES_DIR) -> str:
    """The figure ``name`` of :data:`INLINE`, as it must appear between its markers."""
    script, key, fmt, scale = INLINE[name]
    rec = load(figures_dir).get(Path(script).stem)
    shown = None if rec is None else _format(rec.get("figures", {}).get(key), fmt, scale)
    return "not measured" if shown is None else shown


def _block_markers(name: str) -> tuple[str, str]:
    return f"<!-- figures:{name}:begin -->", f"<!-- figures:{name}:end -->"


# markers: a block's on lines of their own, an inline figure's anywhere but right after a
# backtick (so that the docs can name the markers in code spans)
BLOCK_RE = re.compile(
    r"^<!-- figures:([\w-]+):begin -->\n?(.*?)\n?^<!-- figures:\1:end -->$", re.S | re.M
)
INLINE_RE = re.compile(r"(?<!`)<!-- figure:([\w-]+) -->(.*?)<!-- /figure -->")


def _render_doc(text: str, figures_dir: Path) -> str:
    """``text`` with every block and inline figure it holds re-rendered (unknown names are left
    as they are; :func:`check` reports them)."""

    def block(m: re.Match) -> str:
        if m.group(1) not in BLOCKS:
            return m.group(0)
        begin, end = _block_markers(m.group(1))
        return f"{begin}\n{render_block(m.group(1), figures_dir)}\n{end}"

    def inline(m: re.Match) -> str:
        if m.group(1) not in INLINE:
            return m.group(0)
        return (
            f"<!-- figure:{m.group(1)} -->{render_inline(m.group(1), figures_dir)}<!-- /figure -->"
        )

    return INLINE_RE.sub(inline, BLOCK_RE.sub(block, text))


def rendered_docs(root: Path = ROOT) -> list[Path]:
    """The documents that may hold rendered figures: the README and ``docs/*.md``."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def check(root: Path = ROOT, figures_dir: Path = FIGURES_DIR) -> list[str]:
    """Every way the README and docs differ from what this renders now: a stale table, block or
    inline figure, a block missing from its doc or found twice, an unknown name. Empty when all
    is up to date."""
    problems = []
    texts = {_shown(p, root): p.read_text() for p in rendered_docs(root) if p.is_file()}
    readme = texts.get("README.md")
    if readme is not None and readme_table(readme) != render_table(figures_dir):
        problems.append("README.md: the headline table differs from docs/figures/*.json")
    for doc, text in texts.items():
        found = BLOCK_RE.findall(text)
        for name, _ in found:
            if name not in BLOCKS:
                problems.append(f"{doc}: unknown figures block {name!r}")
            elif BLOCKS[name][0] != doc:
                problems.append(f"{doc}: block {name!r} belongs in {BLOCKS[name][0]}")
        for name, _ in INLINE_RE.findall(text):
            if name not in INLINE:
                problems.append(f"{doc}: unknown inline figure {name!r}")
        if _render_doc(text, figures_dir) != text:
            stale = [n for n, body in found if n in BLOCKS and body != render_block(n, figures_dir)]
            stale += [
                n
                for n, body in INLINE_RE.findall(text)
                if n in INLINE and body != render_inline(n, figures_dir)
            ]
            problems.append(f"{doc}: stale rendered figures {sorted(set(stale))}")
    for name, (doc, _) in BLOCKS.items():
        n = [found for found, _ in BLOCK_RE.findall(texts.get(doc, ""))].count(name)
        if n != 1:
            problems.append(f"{doc}: holds block {name!r} {n} times, not once")
    return problems


def readme_table(text: str) -> str:
    """What the README holds between the markers (stripped); ValueError if they are missing."""
    try:
        start = text.index(BEGIN) + len(BEGIN)
        stop = text.index(END, start)
    except ValueError:
        raise ValueError(f"README.md lacks the markers {BEGIN} ... {END}") from None
    return text[start:stop].strip()


def update_readme(readme: Path = README, figures_dir: Path = FIGURES_DIR) -> bool:
    """Rewrite the table between the markers; return whether anything changed."""
    from moseg.utils.atomic import atomic_write_text

    text = readme.read_text()
    readme_table(text)  # the markers must be there
    start = text.index(BEGIN) + len(BEGIN)
    stop = text.index(END, start)
    new = text[:start] + "\n" + render_table(figures_dir) + "\n" + text[stop:]
    if new == text:
        return False
    atomic_write_text(readme, new)
    return True


def update_docs(root: Path = ROOT, figures_dir: Path = FIGURES_DIR) -> list[str]:
    """Re-render every block and inline figure in the README and ``docs/*.md``; return the
    documents that changed."""
    from moseg.utils.atomic import atomic_write_text

    changed = []
    for path in rendered_docs(root):
        if not path.is_file():
            continue
        text = path.read_text()
        new = _render_doc(text, figures_dir)
        if new != text:
            atomic_write_text(path, new)
            changed.append(_shown(path, root))
    return changed


def update_all(root: Path = ROOT, figures_dir: Path = FIGURES_DIR) -> list[str]:
    """The README's headline table, then every block and inline figure; the files changed."""
    readme = root / "README.md"
    changed = ["README.md"] if readme.is_file() and update_readme(readme, figures_dir) else []
    return sorted(set(changed + update_docs(root, figures_dir)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--docs", action="store_true", help="only re-render every table")
    ap.add_argument("--readme", action="store_true", help="the same as --docs")
    ap.add_argument("--check", action="store_true", help="exit 1 if a rendered table is stale")
    ap.add_argument("--no-readme", action="store_true", help="record without re-rendering")
    ap.add_argument("script", nargs="?", help="benchmark script to run and record")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = ap.parse_args(argv)
    if a.check:
        problems = check()
        for p in problems:
            print(p)
        print("stale: run python benchmarks/record.py --docs" if problems else "all up to date")
        return 1 if problems else 0
    render = a.docs or a.readme
    if a.script is None and not render:
        ap.error("give a SCRIPT to record, or --docs")
    if a.script is not None and record(a.script, a.args) is None:
        return 1
    if render or not a.no_readme:
        changed = update_all()
        print(f"re-rendered: {', '.join(changed) or 'all already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
