"""Does our ``model=release`` compute what the SegAnyMo release computes?

For a fixture folder (one release-format ``*.pth``, cases ``*.npz`` with the release's batch and
its outputs ``prob``, ``logit``, ``motion_feat``, optional ``meta.json``; the layout of
``../shared/fixtures/segany_release/``) it loads the checkpoint the two ways a user does
(``ckpt=moseg.pth`` directly, and after ``moseg import-release``), runs every case, and prints one
JSON line: ``release_forward_max_abs_diff`` over all cases, outputs and both paths, and ``cases``.
Without DIR and without the default folder it prints a skip reason and an empty JSON (exit 0).

    python benchmarks/release/parity.py [DIR]     # default: ../shared/fixtures/segany_release

Run without arguments (as ``make bench`` runs it), it also stores
its figures in ``docs/figures/parity.json`` and re-renders the docs that show
them (benchmarks/record.py).
"""

from __future__ import annotations

import argparse
import json
import runpy
import sys
from pathlib import Path

from moseg.models.parity import fixture_parity

DEFAULT = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "segany_release"
RECORD = Path(__file__).resolve().parents[1] / "record.py"  # store(): docs/figures/<stem>.json


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", type=Path, default=None, help=f"default: {DEFAULT}")
    ap.add_argument("--verbose", action="store_true", help="also print each case's figures")
    a = ap.parse_args(argv)
    if a.folder is None:
        a.folder = DEFAULT
        if not a.folder.is_dir():  # `make bench` away from ../shared: nothing to measure
            print(f"skipped: no fixture folder {a.folder}")
            print(json.dumps({}))
            return 0
    if not a.folder.is_dir():
        print(f"error: {a.folder}: no such fixture folder", file=sys.stderr)
        return 2
    try:
        res = fixture_parity(a.folder)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if a.verbose:
        for row in res["by_case"]:
            print(json.dumps(row))
    figures = {k: res[k] for k in ("release_forward_max_abs_diff", "cases")}
    figures["release_max_abs_diff_by_output"] = res["max_abs_diff_by_output"]
    runpy.run_path(str(RECORD))["store"](__file__, sys.argv[1:] if argv is None else argv, figures)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
