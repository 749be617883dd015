"""`make bench`: run every figure script, ``benchmarks/<folder>/*.py`` for every folder but
those in :data:`SKIP` (``tools/``, ``gpu/``), each in its own process and without arguments, and
print as the last line one JSON object holding every figure by name. Exits non-zero if a script
failed.

``benchmarks/tools/`` holds what is run by hand with arguments (tuning on the train sequences,
overlay pictures, metrics of a given checkpoint); their docstrings say how. ``benchmarks/gpu/``
is the GPU check, run on a GPU machine through ``check.sh`` (its README.md says how).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SKIP = frozenset({"tools", "gpu"})  # folders `make bench` leaves out


def scripts(root: Path = HERE) -> list[Path]:
    """The scripts `make bench` runs, in order: every ``*.py`` one folder below ``root``,
    except in the folders of :data:`SKIP` and in hidden or ``__pycache__`` folders."""
    return sorted(
        p
        for p in root.glob("*/*.py")
        if p.parent.name not in SKIP and not p.parent.name.startswith((".", "_"))
    )


def main() -> int:
    figures: dict[str, object] = {}
    failed = []
    for script in scripts():
        print(f"== {script.relative_to(HERE)}", flush=True)
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
