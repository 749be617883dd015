"""Figures never copied by hand: run a benchmark script and keep what it printed.

    python benchmarks/record.py SCRIPT [ARGS...]   # run it, store docs/figures/<stem>.json
    python benchmarks/record.py --readme           # rewrite the README's headline table
    python benchmarks/record.py --check            # exit 1 if that table is out of date

Every benchmark script prints one JSON object of named figures as its last stdout line. This
runs SCRIPT with ARGS under the current interpreter (its output passes through), and stores
``docs/figures/<script stem>.json`` = ``{"command", "date", "figures"}``, written atomically,
then refreshes the README's table (``--no-readme`` skips that). Nothing is stored when the
script fails, prints no JSON object, or prints an empty one (a benchmark that skipped).

The README's headline table, between ``<!-- figures:begin -->`` and ``<!-- figures:end -->``,
is rendered from those files by :data:`HEADLINE`; a row whose file or figure is missing says
"not measured" and the command that measures it. ``tests/test_readme.py`` checks the README
holds exactly what this renders.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIGURES_DIR = ROOT / "docs" / "figures"
README = ROOT / "README.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"

# (script that measures it, its arguments to show when unmeasured, figure key in its JSON,
#  label, format of the value)
HEADLINE: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "benchmarks/davis2016/davis_moving.py",
        "",
        "davis_moving_jf",
        "J&F on DAVIS16-Moving: shipped classifier, weight-free CPU path (target 0.70)",
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


def figures_path(script: str | Path, figures_dir: Path = FIGURES_DIR) -> Path:
    return Path(figures_dir) / f"{Path(script).stem}.json"


def run_script(script: Path, args: list[str]) -> tuple[int, dict | None, str]:
    """Run ``script`` with ``args``, echoing its output; return (exit code, figures, why not)."""
    proc = subprocess.Popen(
        [sys.executable, str(script), *args], stdout=subprocess.PIPE, text=True, bufsize=1
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
    if not isinstance(figures, dict) or not figures:
        return 1, None, "it printed no figures (skipped?)"
    return 0, figures, ""


def record(
    script: str | Path, args: list[str], figures_dir: Path = FIGURES_DIR, root: Path = ROOT
) -> Path | None:
    """Run a benchmark script and store its figures; return the file written, or None."""
    from moseg.utils.atomic import atomic_write_text

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
    try:
        shown = path.resolve().relative_to(root)
    except ValueError:
        shown = path
    entry = {
        "command": shlex.join(["python", str(shown), *args]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "figures": figures,
    }
    out = figures_path(path, figures_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(entry, indent=2) + "\n")
    print(f"recorded {len(figures)} figure(s) in {out}")
    return out


def load(figures_dir: Path = FIGURES_DIR) -> dict[str, dict]:
    """Every stored record, by script stem."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(Path(figures_dir).glob("*.json"))}


def render_table(figures_dir: Path = FIGURES_DIR) -> str:
    """The headline table, as it must appear between the README's markers."""
    records = load(figures_dir)
    rows = ["| figure | value | measured by |", "|---|---|---|"]
    for script, hint, key, label, fmt in HEADLINE:
        rec = records.get(Path(script).stem)
        value = None if rec is None else rec.get("figures", {}).get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = f"**{fmt.format(value)}**"
            how = f"`{rec['command']}`, {rec['date']}"
        else:
            shown = "not measured"
            how = f"`python benchmarks/record.py {' '.join(filter(None, (script, hint)))}`"
        rows.append(f"| {label} | {shown} | {how} |")
    return "\n".join(rows)


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


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--readme", action="store_true", help="only rewrite the README's table")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README's table is stale")
    ap.add_argument("--no-readme", action="store_true", help="record without touching README")
    ap.add_argument("script", nargs="?", help="benchmark script to run and record")
    ap.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    a = ap.parse_args(argv)
    if a.check:
        ok = readme_table(README.read_text()) == render_table()
        print("README figures table is up to date" if ok else "stale: run record.py --readme")
        return 0 if ok else 1
    if a.script is None and not a.readme:
        ap.error("give a SCRIPT to record, or --readme")
    if a.script is not None and record(a.script, a.args) is None:
        return 1
    if a.readme or not a.no_readme:
        changed = update_readme()
        print(f"README.md figures table {'rewritten' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
