"""`make bench`: run every script in benchmarks/{release,perf,prep,davis2016,sam2,segment}/, each
in its own process, and print as the last line one JSON object holding every figure by name. Exits
non-zero if a script failed. Scripts that need arguments (BY_HAND) are run by hand, not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# need a checkpoint or a run folder as argument (their docstrings say which)
BY_HAND = ("tune_decision.py", "worst_overlays.py")


def main() -> int:
    here = Path(__file__).resolve().parent
    figures: dict[str, object] = {}
    failed = []
    dirs = ("release", "perf", "prep", "davis2016", "sam2", "segment")
    scripts = [p for d in dirs for p in sorted((here / d).glob("*.py")) if p.name not in BY_HAND]
    for script in scripts:
        print(f"== {script.name}", flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
        sys.stdout.write(proc.stdout)
        sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
        lines = [ln for ln in proc.stdout.strip().splitlines() if ln.strip()]
        try:
            if proc.returncode:
                raise ValueError(f"exit code {proc.returncode}")
            figures.update(json.loads(lines[-1]))
        except (IndexError, ValueError) as e:
            failed.append(script.name)
            print(f"!! {script.name} failed: {e}", file=sys.stderr)
    if failed:
        figures["failed"] = failed
    print(json.dumps(figures))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
