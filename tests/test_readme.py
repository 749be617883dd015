"""The README stays short, its headline figures and every rendered table of docs/ come from the
benchmarks' recorded output (never copied by hand), it names no package index, and its links into
docs/ exist."""

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


def test_every_rendered_figure_in_the_docs_is_what_record_renders():
    problems = _record().check()
    assert not problems, (
        "docs differ from docs/figures/*.json (a number edited by hand, or a record not "
        f"rendered): {problems}; run `python benchmarks/record.py --docs`"
    )


def test_every_rendered_figure_comes_from_a_figure_script_of_make_bench():
    record = _record()
    scripts = {spec.script for _, spec in record.BLOCKS.values()}
    scripts |= {script for script, *_ in record.INLINE.values()}
    scripts |= {script for script, *_ in record.HEADLINE if "/tools/" not in script}
    for script in sorted(scripts):
        assert (ROOT / script).is_file() and "/tools/" not in script, script


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


def _docs_root(tmp_path, record, monkeypatch):
    """A project root with one doc holding a block and an inline figure of a script ``bench``."""
    script = tmp_path / "benchmarks" / "x" / "bench.py"
    script.parent.mkdir(parents=True)
    script.write_text("")
    rows = (record.Row("speed", "speed (s)", "{:.2f}"), record.Row("jf", "J&F", "{:.1f}", 100))
    monkeypatch.setattr(
        record, "BLOCKS", {"bench": ("docs/a.md", record.Rows("benchmarks/x/bench.py", rows))}
    )
    monkeypatch.setattr(record, "INLINE", {"jf": ("benchmarks/x/bench.py", "jf", "{:.1f}", 100)})
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "a.md"
    doc.write_text(
        "# a\n\nJ&F <!-- figure:jf -->1.0<!-- /figure -->.\n\n"
        "<!-- figures:bench:begin -->\nold\n<!-- figures:bench:end -->\n\nrest\n"
    )
    return script, doc


def test_a_figure_script_stores_its_run_and_renders_the_docs(tmp_path, monkeypatch):
    record = _record()
    monkeypatch.delenv(record.RECORDING_ENV, raising=False)
    script, doc = _docs_root(tmp_path, record, monkeypatch)
    fig = tmp_path / "docs" / "figures"
    assert record.check(tmp_path, fig)  # not rendered yet
    out = record.store(script, [], {"speed": 0.25, "jf": 0.5465001}, fig, tmp_path)
    assert out == fig / "bench.json"
    rec = json.loads(out.read_text())
    assert rec["command"] == "python benchmarks/x/bench.py" and rec["date"]
    assert rec["machine"]["cpus"] >= 1 and rec["machine"]["load_1min"] >= 0
    text = doc.read_text()
    assert "J&F <!-- figure:jf -->54.7<!-- /figure -->." in text
    assert "Recorded by `python benchmarks/x/bench.py`" in text and " CPUs (`docs/figures/" in text
    assert "| speed (s) | 0.25 |" in text and "| J&F | 54.7 |" in text
    assert text.endswith("<!-- figures:bench:end -->\n\nrest\n")
    assert record.check(tmp_path, fig) == []
    assert record.update_all(tmp_path, fig) == []  # already up to date

    doc.write_text(text.replace("| 0.25 |", "| 0.20 |"))  # a number edited by hand
    assert any("stale" in p and "bench" in p for p in record.check(tmp_path, fig))
    doc.write_text(text.replace("54.7<", "55.0<"))
    assert any("stale" in p and "jf" in p for p in record.check(tmp_path, fig))


@pytest.mark.parametrize(
    ("args", "env", "figures"),
    [
        (["--sequences", "dog"], {}, {"speed": 1.0}),  # not the documented run
        ([], {"MOSEG_RECORDING": "1"}, {"speed": 1.0}),  # record.py stores it instead
        ([], {}, {}),  # skipped
        ([], {}, {"speed": None, "jf": None}),  # skipped, with null figures
    ],
)
def test_a_figure_script_stores_nothing_from_other_runs(tmp_path, monkeypatch, args, env, figures):
    record = _record()
    monkeypatch.delenv(record.RECORDING_ENV, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    script, doc = _docs_root(tmp_path, record, monkeypatch)
    before = doc.read_text()
    assert record.store(script, args, figures, tmp_path / "fig", tmp_path) is None
    assert not (tmp_path / "fig").exists() and doc.read_text() == before


def test_a_block_must_be_in_its_doc_once_and_names_must_be_known(tmp_path, monkeypatch):
    record = _record()
    _, doc = _docs_root(tmp_path, record, monkeypatch)
    fig = tmp_path / "fig"
    record.update_all(tmp_path, fig)
    assert record.check(tmp_path, fig) == []
    assert "| speed (s) | not measured |" in doc.read_text()  # no record yet: says so
    text = doc.read_text()
    doc.write_text(text + "\n<!-- figure:nope -->1<!-- /figure -->\n")
    assert any("unknown inline figure 'nope'" in p for p in record.check(tmp_path, fig))
    doc.write_text(text.replace("figures:bench:", "figures:gone:"))
    problems = record.check(tmp_path, fig)
    assert any("unknown figures block 'gone'" in p for p in problems)
    assert any("holds block 'bench' 0 times" in p for p in problems)
