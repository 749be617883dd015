"""The README stays short, its headline figures come from the benchmarks' recorded output (never
copied by hand), it names no package index, and its links into docs/ exist."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INDEX_HOSTS = ("download.pytorch.org", "pypi.org", "pypi.python.org", "files.pythonhosted.org")


def _record():
    spec = importlib.util.spec_from_file_location(
        "moseg_bench_record", ROOT / "benchmarks/record.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_is_at_most_15000_bytes():
    size = README.stat().st_size
    assert size <= 15_000, f"README.md is {size} bytes; move detail into docs/"


def test_readme_figures_table_is_what_record_renders():
    record = _record()
    shown = record.readme_table(README.read_text())
    assert shown == record.render_table(), (
        "the README's headline table differs from docs/figures/*.json: "
        "run `python benchmarks/record.py --readme`"
    )


@pytest.mark.parametrize("name", ["README.md", "Makefile"])
def test_no_package_index_host_names(name):
    text = (ROOT / name).read_text().lower()
    for host in INDEX_HOSTS:
        assert host not in text, f"{name} names the package index {host}"


def test_every_docs_link_in_the_readme_exists():
    text = README.read_text()
    links = set(re.findall(r"\bdocs/[\w./<>-]*", text))
    links = {link.rstrip(".,:;)") for link in links if "<" not in link}
    assert links, "the README links into docs/"
    missing = sorted(link for link in links if not (ROOT / link.split("#")[0]).exists())
    assert not missing, f"the README links to missing files: {missing}"


def test_figure_records_are_well_formed():
    for path in sorted((ROOT / "docs" / "figures").glob("*.json")):
        rec = json.loads(path.read_text())
        assert set(rec) >= {"command", "date", "figures"}, path
        assert isinstance(rec["figures"], dict) and rec["figures"], path


def test_record_stores_a_scripts_figures_and_renders_them(tmp_path, capsys):
    record = _record()
    script = tmp_path / "davis_moving.py"
    script.write_text(
        "import json\nprint('a table')\n"
        "print(json.dumps({'davis_moving_jf': 0.5, 'pipeline_s_per_frame_davis': 0.25}))\n"
    )
    out = record.record(script, ["--sequences", "dog"], figures_dir=tmp_path / "fig")
    assert out == tmp_path / "fig" / "davis_moving.json"
    rec = json.loads(out.read_text())
    assert rec["figures"] == {"davis_moving_jf": 0.5, "pipeline_s_per_frame_davis": 0.25}
    assert rec["command"].endswith("davis_moving.py --sequences dog") and rec["date"]
    assert "a table" in capsys.readouterr().out  # the script's own output passes through
    assert not list((tmp_path / "fig").glob(".*"))  # no temporary file left

    table = record.render_table(tmp_path / "fig")
    assert "| **0.500** |" in table and "| **0.25** |" in table
    assert table.count("not measured") == len(record.HEADLINE) - 2

    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{record.BEGIN}\nold\n{record.END}\n\nrest\n")
    assert record.update_readme(readme, tmp_path / "fig")
    assert record.readme_table(readme.read_text()) == table
    assert readme.read_text().endswith(f"{record.END}\n\nrest\n")
    assert not record.update_readme(readme, tmp_path / "fig")  # already up to date


@pytest.mark.parametrize(
    "body",
    [
        "import sys\nprint('{\"x\": 1}')\nsys.exit(3)\n",  # failed
        "print('no figures here')\n",  # no JSON
        "print('skipped: no data')\nprint('{}')\n",  # skipped
    ],
)
def test_record_keeps_nothing_from_a_failed_or_skipped_run(tmp_path, body):
    record = _record()
    script = tmp_path / "bench.py"
    script.write_text(body)
    assert record.record(script, [], figures_dir=tmp_path / "fig") is None
    assert not (tmp_path / "fig" / "bench.json").exists()


def test_record_refuses_a_missing_script(tmp_path):
    record = _record()
    assert record.record(tmp_path / "nope.py", [], figures_dir=tmp_path) is None
