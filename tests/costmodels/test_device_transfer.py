"""Few-shot device transfer (`costmodels.device_transfer`, `benchmarks.device_transfer`) on a real slice of the
NAS-Bench-201 table (400 rows, all ten devices): the CLI's JSON, that the other devices are really learned from,
and that bad input exits 2 naming what is wrong."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from costmodels.device_transfer import DeviceTable, cell_features, predict_device, select_shots
from costmodels.errors import CostModelError
from costmodels.metrics import spearman

ROWS = 400


def _write_slice(src, dst, rows: int, keep=None) -> None:
    with open(src, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        cols = [i for i, c in enumerate(header) if keep is None or c in keep or not c.startswith("lat_ms_")]
        body = [row for _, row in zip(range(rows), reader)]
    with open(dst, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow([header[i] for i in cols])
        w.writerows([[row[i] for i in cols] for row in body])


@pytest.fixture(scope="module")
def slice_csv(nb201_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("nb201_slice") / "slice.csv"
    _write_slice(nb201_path, path, ROWS)
    return path


def _run(run_benchmark, argv):
    """`python -m benchmarks.device_transfer argv` in a process of its own: (exit code, stdout, stderr)."""
    proc = run_benchmark("device_transfer", argv, expect=None)
    return proc.returncode, proc.stdout, proc.stderr


def test_cli_json_has_the_scores(slice_csv, run_benchmark):
    rc, out, _ = _run(run_benchmark, ["--table", str(slice_csv), "--target-device", "lat_ms_gold_6226", "--shots", "10",
                               "--seed", "3", "--json"])
    assert rc == 0
    res = json.loads(out)
    for key in ("spearman", "kendall", "within_10pct", "n_scored", "baselines", "chosen"):
        assert key in res
    assert res["n_scored"] == ROWS - 10
    assert len(set(res["shot_rows"])) == 10
    assert all(-1.0 <= res[k] <= 1.0 for k in ("spearman", "kendall"))
    assert 0.0 <= res["within_10pct"] <= 1.0
    # same seed, same shots and scores; another seed, other shots
    rc, again, _ = _run(run_benchmark, ["--table", str(slice_csv), "--target-device", "gold_6226", "--shots", "10",
                                 "--seed", "3", "--json"])
    assert json.loads(again)["spearman"] == res["spearman"]
    _, other, _ = _run(run_benchmark, ["--table", str(slice_csv), "--target-device", "gold_6226", "--shots", "10",
                                "--seed", "4", "--json"])
    assert json.loads(other)["shot_rows"] != res["shot_rows"]


@pytest.mark.parametrize("device", ["lat_ms_eyeriss", "lat_ms_silver_4114"])
def test_held_out_device_beats_shuffled_and_uses_the_other_devices(slice_csv, device):
    table = DeviceTable.from_csv(slice_csv)
    j = table.column(device)
    truth = table.latency_ms[:, j]
    source = np.delete(table.latency_ms, j, axis=1)
    shots = select_shots(len(table), 10, 0)
    rest = np.setdiff1d(np.arange(len(table)), shots)
    pred = predict_device(source, shots, truth[shots], archs=table.archs).pred_ms
    rho = spearman(truth[rest], pred[rest])
    rng = np.random.default_rng(0)
    shuffled = [spearman(truth[rest], rng.permutation(pred[rest])) for _ in range(50)]
    assert rho > max(shuffled) + 0.5, (rho, max(shuffled))

    # without cell features the model has only the other devices: with their rows shuffled (the same
    # columns, no longer the same architectures) it must do much worse than with the real ones
    real = predict_device(source, shots, truth[shots], method="ridge_devices").pred_ms
    broken_src = source[rng.permutation(len(table))]
    broken = predict_device(broken_src, shots, truth[shots], method="ridge_devices").pred_ms
    assert spearman(truth[rest], real[rest]) > spearman(truth[rest], broken[rest]) + 0.3


def test_any_set_of_device_columns_and_every_method(nb201_path, tmp_path):
    path = tmp_path / "three.csv"
    _write_slice(nb201_path, path, 200, keep={"lat_ms_fpga", "lat_ms_pixel3", "lat_ms_raspi4"})
    table = DeviceTable.from_csv(path)
    assert table.devices == ("lat_ms_fpga", "lat_ms_pixel3", "lat_ms_raspi4")
    assert table.column("raspi4") == table.column("lat_ms_raspi4") == 2
    j = table.column("pixel3")
    shots = select_shots(len(table), 8, 1)
    for method in ("ridge_select", "ridge_devices", "rank_average", "xgb", "shots_only"):
        pred = predict_device(np.delete(table.latency_ms, j, axis=1), shots, table.latency_ms[shots, j],
                              archs=table.archs, method=method)
        assert pred.pred_ms.shape == (len(table),)
        assert np.all(np.isfinite(pred.pred_ms)) and np.all(pred.pred_ms > 0)


def test_cell_features_by_hand():
    arch = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"
    counts = cell_features([arch])[0]            # skip, 1x1, 3x3, pool
    assert counts.tolist() == [1.0, 1.0, 2.0, 1.0]
    onehot = cell_features([arch], "onehot")[0].reshape(6, 5)
    assert onehot.sum() == 6 and onehot[1, 0] == 1.0 and onehot[0, 3] == 1.0


def test_shots_are_checked():
    assert select_shots(100, 10, 7).tolist() == select_shots(100, 10, 7).tolist()
    with pytest.raises(CostModelError, match="K >= 2"):
        select_shots(100, 1, 0)
    with pytest.raises(CostModelError, match="K \\+ 2"):
        select_shots(5, 4, 0)


def test_bad_input_exits_2_naming_what_is_wrong(slice_csv, nb201_path, tmp_path, run_benchmark):
    rc, _, err = _run(run_benchmark, ["--table", str(slice_csv), "--target-device", "lat_ms_tpu_v9", "--json"])
    assert rc == 2 and "lat_ms_tpu_v9" in err and "lat_ms_gold_6226" in err
    rc, _, err = _run(run_benchmark, ["--table", str(slice_csv), "--shots", "1"])
    assert rc == 2 and "--shots" in err
    tiny = tmp_path / "tiny.csv"
    _write_slice(nb201_path, tiny, 6)
    rc, _, err = _run(run_benchmark, ["--table", str(tiny), "--shots", "5"])
    assert rc == 2 and "6 rows" in err
    no_lat = tmp_path / "nolat.csv"
    _write_slice(nb201_path, no_lat, 20, keep=set())
    rc, _, err = _run(run_benchmark, ["--table", str(no_lat)])
    assert rc == 2 and "lat_ms_<device>" in err
    rc, _, err = _run(run_benchmark, ["--table", str(tmp_path / "absent.csv")])
    assert rc == 2 and "absent.csv" in err


def test_all_devices_mode_writes_the_summary(slice_csv, tmp_path, run_benchmark):
    out = tmp_path / "dt.json"
    rc, _, _ = _run(run_benchmark, ["--table", str(slice_csv), "--all-devices", "--seeds", "2", "--shots-list", "5,10",
                             "--no-xgb", "--out", str(out), "--quiet"])
    assert rc == 0
    res = json.loads(out.read_text())
    assert isinstance(res["mean_spearman_10_shots"], float)
    assert res["aim"]["met"] == (res["mean_spearman_10_shots"] >= 0.95)
    assert [d["column"] for d in res["devices"]] == list(DeviceTable.from_csv(slice_csv).devices)
    assert set(res["devices"][0]["shots"]) == {"5", "10"}
    assert "shots_only" in res["mean_spearman_by_shots"]["10"]
    assert res["complete"] is True and res["command"].startswith("python") and res["machine"]["cores"] >= 1
    # the figure and the markdown table beside the JSON: one row per device and the mean
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    md = out.with_suffix(".md").read_text().splitlines()
    assert md[0] == "| device | K=5 | K=10 | K=10 shots only | MACs (live edges) |"
    assert len(md) == 2 + len(res["devices"]) + 1 and md[-1].startswith("| **mean** |")
    first = res["devices"][0]
    assert md[2].startswith(f"| {first['device']} | {first['shots']['5']['ridge_select']['spearman_mean']:.3f} |")

    # resume: a run stopped after two devices (the file as it was saved then) goes on from the third, keeps the
    # two it has (their timing stamps too) and ends with the same figures as the uninterrupted run
    cut = dict(res, devices=res["devices"][:2], complete=False)
    out.write_text(json.dumps(cut))
    rc, _, _ = _run(run_benchmark, ["--table", str(slice_csv), "--all-devices", "--quick", "--out", str(out),
                                    "--quiet"])
    assert rc == 0
    resumed = json.loads(out.read_text())
    assert resumed["started"] == res["started"] and resumed["complete"] is True
    assert resumed["devices"][:2] == res["devices"][:2]
    for a, b in zip(resumed["devices"], res["devices"]):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    assert resumed["mean_spearman_by_shots"] == res["mean_spearman_by_shots"]
    # other settings start afresh: --quick is 2 seeds, K = 5 and 10, no xgb, so 3 seeds is another run
    rc, _, _ = _run(run_benchmark, ["--table", str(slice_csv), "--all-devices", "--quick", "--seeds", "3",
                                    "--out", str(out), "--quiet"])
    fresh = json.loads(out.read_text())
    assert rc == 0 and fresh["settings"]["seeds"] == 3 and fresh["started"] >= res["started"]
    assert fresh["devices"][0]["shots"]["5"] != res["devices"][0]["shots"]["5"]
