"""`benchmarks.common`'s harness: quick / full sizes, the resumable result file, the markdown table.
Real files in tmp_path; nothing is mocked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from benchmarks.common import ResultFile, Size, add_sizes, markdown_table, resolve_sizes

SIZES = {"seeds": Size(2, 10, "seeds per device"), "shots_list": Size("5,10", "5,10,20", "the K values", str)}


def _args(argv):
    p = argparse.ArgumentParser()
    add_sizes(p, SIZES, "a small run")
    return resolve_sizes(p.parse_args(argv), SIZES)


def test_sizes_quick_full_and_what_the_user_gives():
    full, quick = _args([]), _args(["--quick"])
    assert (full.seeds, full.shots_list, full.quick) == (10, "5,10,20", False)
    assert (quick.seeds, quick.shots_list, quick.quick) == (2, "5,10", True)
    given = _args(["--quick", "--seeds", "3", "--shots-list", "7"])
    assert (given.seeds, given.shots_list) == (3, "7")
    p = argparse.ArgumentParser()
    add_sizes(p, SIZES, "a small run")
    assert "(default 10, quick 2)" in p.format_help()


def test_a_result_file_resumes_only_its_own_settings(tmp_path):
    path = tmp_path / "sub" / "bench.json"
    first = ResultFile("bench", path, {"k": (5, 10), "seeds": 2})
    assert not first.resumed and first.payload["settings"] == {"k": [5, 10], "seeds": 2}
    first.payload["rows"] = [{"device": "a"}]
    first.save()
    on_disk = json.loads(path.read_text())
    assert on_disk["rows"] == [{"device": "a"}] and on_disk["command"].startswith("python")
    assert on_disk["machine"]["cores"] >= 1 and on_disk["updated"] >= on_disk["started"]
    assert [p.name for p in path.parent.iterdir()] == ["bench.json"]   # no temporary file left
    again = ResultFile("bench", path, {"k": [5, 10], "seeds": 2})    # same settings (a tuple reads back a list)
    assert again.resumed and again.payload["rows"] == [{"device": "a"}]
    assert again.payload["started"] == on_disk["started"]
    other = ResultFile("bench", path, {"k": [5, 10], "seeds": 3})    # other settings: afresh
    assert not other.resumed and "rows" not in other.payload
    assert not ResultFile("another", path, {"k": [5, 10], "seeds": 2}).resumed  # another benchmark's file
    assert not ResultFile("bench", path, {"k": [5, 10], "seeds": 2}, resume=False).resumed


def test_figure_and_table_beside_the_json(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    result = ResultFile("bench", tmp_path / "bench.json", {})
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    png = result.figure(fig)
    assert png == tmp_path / "bench.png" and png.read_bytes()[:4] == b"\x89PNG"
    text = result.table(["device", "rho", "n"], [["a|b", 0.98765, 3], ["c", None, 4]], digits=2)
    assert (tmp_path / "bench.md").read_text() == text
    assert text.splitlines() == ["| device | rho | n |", "|---|---:|---:|", "| a\\|b | 0.99 | 3 |", "| c | - | 4 |"]


def test_markdown_table_refuses_a_ragged_row():
    assert markdown_table(["x"], []) == "| x |\n|---|\n"
    with pytest.raises(ValueError, match="2 cells under 1 columns"):
        markdown_table(["x"], [[1, 2]])


def test_a_size_help_may_hold_a_percent_sign():
    """argparse %-formats help strings: "95 % interval" once crashed `--help` of nb201_cosearch."""
    p = argparse.ArgumentParser()
    add_sizes(p, {"bootstrap": Size(5, 50, "resamples for the 95 % interval")}, "a small run")
    assert "95 % interval (default 50, quick 5)" in p.format_help()


BENCHMARKS = sorted(p.stem for p in (Path(__file__).parents[2] / "benchmarks").glob("*.py")
                    if p.stem not in ("__init__", "common"))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_explains_itself(name, run_benchmark):
    done = run_benchmark(name, ["--help"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout and "--quick" in done.stdout
