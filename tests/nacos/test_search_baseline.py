"""The co-search pipeline end to end with the baseline's onnxruntime latency (no TVM): real supernet,
real export, real measurements, real store, resume and report."""

import json
import os
import subprocess
import sys

import pytest

from nacos.config import config_from_dict
from nacos.errors import ConfigError
from nacos.search.run import report_run, run_search

CFG = {"mode": "baseline", "baseline_latency": "onnxruntime", "trials": 4, "seed": 3,
       "strategy": {"population": 2, "sample_size": 2},
       "budgets": {"latency_budgets_ms": [0.3, 5.0], "memory_budgets_mb": [0.1, 1.0]},
       "tuning": {"repeats": 5, "warmup": 1, "threads": 1}}


def test_baseline_search_runs_resumes_and_reports(tmp_path):
    run_dir = tmp_path / "run"
    summary = run_search(config_from_dict(CFG), run_dir, progress=False)
    assert summary["evaluated"] == 4 and summary["ok"] + summary["rejected"] + summary["failed"] == 4
    assert summary["failed"] == 0
    assert summary["front"] and summary["hypervolume"] > 0
    # the report says how many candidates each phase evaluated, and what drove aging evolution
    ph = summary["phases"]
    assert (ph["strategy"], ph["population"], ph["random_initial"], ph["evolved"], ph["generations"]) == \
        ("aging", 2, 2, 2, 2.0)
    assert ph["screened"] == ph["tuned"] == 0 and ph["compiled_and_measured_only"] == summary["ok"]
    assert ph["driven_by"].startswith("accuracy alone") and ph["hard_budgets"] == {}
    assert json.loads((run_dir / "report" / "report.json").read_text())["phases"] == ph
    for name in ("candidates.csv", "front.json", "report.json", "accuracy_vs_latency.png", "progress.png",
                 "layers.png", "precision.json"):
        assert (run_dir / "report" / name).exists(), name
    rows = json.loads((run_dir / "report" / "candidates.json").read_text())
    row = rows[0]
    assert 0 < row["accuracy"] <= 1 and row["latency_ms"] > 0 and row["peak_memory_mb"] > 0 and row["macs"] > 0
    assert "over_memory_0.1mb" in row and "over_latency_5ms" in row
    assert row["op_model_j"] > 0  # operation-level energy from costmodels
    # a rerun with more trials resumes: the first four are replayed, not evaluated again
    again = run_search(config_from_dict({**CFG, "trials": 5}), run_dir, progress=False)
    assert again["replayed"] == 4 and again["evaluated_now"] == 1 and again["evaluated"] == 5
    # another seed in the same directory is refused
    with pytest.raises(ConfigError, match="another configuration.*seed"):
        run_search(config_from_dict({**CFG, "seed": 4}), run_dir, progress=False)
    assert report_run(run_dir)["evaluated"] == 5


def test_a_latency_budget_derived_from_the_initial_population(tmp_path):
    """budgets.latency_from_population: once the random initial population (2 rows) is committed, the
    median of its measured latencies is a hard budget for every later row (rejected above it, with the
    reason; each later row carries it); a rerun that extends the run rebuilds the same budget from the
    store, and the report's phases name it as the hard latency budget."""
    import numpy as np

    cfg = {**CFG, "trials": 6, "budgets": {"latency_from_population": 0.5}}
    run_dir = tmp_path / "run"
    run_search(config_from_dict(cfg), run_dir, progress=False)
    again = run_search(config_from_dict({**cfg, "trials": 9}), run_dir, progress=False)
    assert again["replayed"] == 6 and again["evaluated"] == 9
    rows = sorted(json.loads((run_dir / "report" / "candidates.json").read_text()), key=lambda r: r["seq"])
    first, later = rows[:2], rows[2:]
    assert all(r["status"] == "ok" and "latency_budget_ms" not in r for r in first)
    budget = float(np.median([r["latency_ms"] for r in first]))
    for r in later:
        assert r["latency_budget_ms"] == pytest.approx(budget)
        if r["status"] == "ok":
            assert r["latency_ms"] <= budget
        else:
            assert r["status"] == "rejected" and r["latency_ms"] > budget
            assert "over the budget" in r["reason"] and "initial population" in r["reason"]
    assert again["phases"]["hard_budgets"]["latency_ms"] == pytest.approx(budget)
    assert again["phases"]["latency_budget_from_population"] == 0.5
    with pytest.raises(ConfigError, match="latency_from_population"):
        config_from_dict({**CFG, "budgets": {"latency_from_population": 0.5, "latency_ms": 1.0}})
    with pytest.raises(ConfigError, match="latency_from_population"):
        config_from_dict({**CFG, "budgets": {"latency_from_population": 1.5}})


def test_hard_budgets_reject_with_reasons(tmp_path):
    # 0.062 MB: the smallest architecture (0.0615 MB) meets it, so the budget is reachable; samples do not
    cfg = config_from_dict({**CFG, "trials": 3, "budgets": {"active_memory_budget_mb": 0.062}})
    summary = run_search(cfg, tmp_path / "run", progress=False)
    assert summary["rejected"] == 3 and summary["front"] == []
    rows = json.loads((tmp_path / "run" / "report" / "candidates.json").read_text())
    assert all("over the active budget 0.062 MB" in r["reason"] for r in rows)
    assert all("accuracy" not in r for r in rows)  # rejected before the costly steps


def test_a_budget_no_architecture_can_meet_exits_2_and_writes_nothing(tmp_path):
    cfg = config_from_dict({**CFG, "budgets": {"active_memory_budget_mb": 0.01}})
    with pytest.raises(ConfigError, match="no architecture of the space can meet it"):
        run_search(cfg, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    r = _nacos("search", "--mode", "baseline", "--memory-budget", "0.01", "--run-dir", str(tmp_path / "cli"))
    assert r.returncode == 2 and "smallest architecture" in r.stderr, r.stderr
    assert not (tmp_path / "cli").exists()


def _nacos(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nacos", *args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_cli_bad_config_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("mode: baseline\ncolour: blue\n")
    res = _nacos("search", "--config", str(bad), "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 2 and "colour: unknown key" in res.stderr and str(bad) in res.stderr
    assert not (tmp_path / "run").exists()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    res = _nacos("search", "--mode", "baseline", "--run-dir", str(foreign))
    assert res.returncode == 2 and "not a nacos run directory" in res.stderr
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    res = _nacos("report", str(tmp_path / "missing"), "--json")
    assert res.returncode == 2 and "no such run directory" in res.stderr


def test_cli_search_and_report_json(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('mode = "baseline"\nbaseline_latency = "onnxruntime"\ntrials = 2\n[strategy]\npopulation = 2\n'
                   'sample_size = 2\n[tuning]\nrepeats = 3\nwarmup = 1\n')
    res = _nacos("search", "--config", str(cfg), "--run-dir", str(tmp_path / "run"), "--quiet")
    assert res.returncode == 0, res.stderr[-2000:]
    res = _nacos("report", str(tmp_path / "run"), "--json")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert isinstance(report["front"], list) and report["evaluated"] == 2
    res = _nacos("search", "--config", str(cfg), "--run-dir", str(tmp_path / "dry"), "--dry-run")
    assert res.returncode == 0 and "plan: baseline search" in res.stdout and not (tmp_path / "dry").exists()


def test_energy_is_an_objective_and_a_budget_with_both_estimates_in_every_row(tmp_path):
    """`objectives: [accuracy, energy_mj]`: every row carries the operation-level energy (energy_mj) and the
    measured-latency x power proxy (energy_proxy_mj, power_w or a named placeholder); the front is computed
    on energy and plotted; a hard energy budget rejects with the reason."""
    cfg = config_from_dict({**CFG, "trials": 3, "objectives": ["accuracy", "energy_mj"], "power_w": 7.5})
    summary = run_search(cfg, tmp_path / "run", progress=False)
    assert summary["ok"] == 3 and summary["front"]
    rows = json.loads((tmp_path / "run" / "report" / "candidates.json").read_text())
    for row in rows:
        assert row["energy_mj"] == pytest.approx(row["op_model_j"] * 1e3) and row["energy_mj"] > 0
        # ms x W = mJ
        assert row["energy_proxy_mj"] == pytest.approx(row["latency_ms"] * 7.5)
        assert row["energy_power_source"] == "power_w of the run config"
        assert row["edp"] == pytest.approx(row["energy_mj"] * row["latency_ms"])
    front = json.loads((tmp_path / "run" / "report" / "front.json").read_text())
    assert "energy_mj" in json.dumps(front)
    assert (tmp_path / "run" / "report" / "accuracy_vs_energy.png").stat().st_size > 0
    # the smallest energy of the run as a hard budget: the others are rejected, saying why
    least = min(r["energy_mj"] for r in rows)
    tight = config_from_dict({**CFG, "trials": 3, "budgets": {"energy_mj": least * 1.0001}})
    again = run_search(tight, tmp_path / "tight", progress=False)
    tight_rows = json.loads((tmp_path / "tight" / "report" / "candidates.json").read_text())
    assert again["ok"] >= 1 and again["rejected"] == 3 - again["ok"]
    assert all("energy_mj" in r["reason"] and "over the budget" in r["reason"]
               for r in tight_rows if r["status"] == "rejected")
    # without power_w the proxy uses a placeholder, and the row says so
    assert "placeholder" in tight_rows[0]["energy_power_source"]


def test_a_hard_parameter_memory_budget_rejects_and_the_report_counts_soft_violations(tmp_path):
    from archspace.export import export_onnx
    from archspace.space import ArchSpace
    from archspace.stats import onnx_layer_stats

    space = ArchSpace()
    smallest = export_onnx(space.smallest(), tmp_path / "smallest.onnx", check=False)
    weights_mb = sum(s.params for s in onnx_layer_stats(smallest)) * 4 / (1024 * 1024)
    cfg = config_from_dict({**CFG, "trials": 3, "budgets": {"param_memory_budget_mb": weights_mb * 1.0001,
                                                             "memory_budgets_mb": [0.1, 1.0]}})
    summary = run_search(cfg, tmp_path / "run", progress=False)
    rows = json.loads((tmp_path / "run" / "report" / "candidates.json").read_text())
    assert summary["rejected"] >= 1 and summary["ok"] + summary["rejected"] == 3
    for r in rows:
        if r["status"] == "rejected":
            assert "over the parameter-memory budget" in r["reason"] and "accuracy" not in r
        else:
            assert r["param_mb"] <= weights_mb * 1.0001
    report = json.loads((tmp_path / "run" / "report" / "report.json").read_text())
    violations = report["soft_budget_violations"]
    assert set(violations) == {"over_memory_0.1mb", "over_memory_1mb"}
    assert violations["over_memory_0.1mb"]["of"] == 3
    assert violations["over_memory_0.1mb"]["over"] == sum(r["over_memory_0.1mb"] for r in rows)
    # a weights budget below the smallest architecture's: exit 2 before anything is written
    with pytest.raises(ConfigError, match="param_memory_budget_mb.*no architecture of the space can meet it"):
        run_search(config_from_dict({**CFG, "budgets": {"param_memory_budget_mb": weights_mb / 2}}),
                   tmp_path / "never", progress=False)
    assert not (tmp_path / "never").exists()


def test_the_embedded_default_job_evolves_under_a_derived_budget(tmp_path):
    """`nacos search` with no --config is the 15-minute job: enough candidates for aging evolution to pass its
    random population, a latency budget derived from that population, the database seeded from the
    committed pretuned one (a source checkout has it), onnxruntime as the baseline's latency on this CPU;
    a --config starts from the library's defaults instead, and --latency-budget replaces the derived budget."""
    from nacos.cli.search import PRETUNED_DEFAULT_SPACE

    plan = json.loads(_nacos("search", "--dry-run", "--json").stdout)
    assert (plan["trials"], plan["time_limit_s"]) == (400, 900.0)
    assert plan["hard_budgets"]["latency_from_population"] == 0.5 and plan["hard_budgets"]["latency_ms"] is None
    assert plan["config"]["tuning"]["seed_from"] == str(PRETUNED_DEFAULT_SPACE) and PRETUNED_DEFAULT_SPACE.is_dir()
    assert plan["config"]["strategy"]["population"] * 3 < plan["trials"]
    fixed = json.loads(_nacos("search", "--dry-run", "--json", "--latency-budget", "0.5").stdout)
    assert fixed["hard_budgets"]["latency_ms"] == 0.5 and fixed["hard_budgets"]["latency_from_population"] is None
    base = json.loads(_nacos("search", "--dry-run", "--json", "--mode", "baseline").stdout)
    assert base["baseline_latency"] == "onnxruntime"
    cfg = tmp_path / "c.yaml"
    cfg.write_text("mode: two-stage\n")
    own = json.loads(_nacos("search", "--dry-run", "--json", "--config", str(cfg)).stdout)
    assert own["trials"] == 6 and own["time_limit_s"] is None and own["config"]["tuning"]["seed_from"] == ""
    assert own["hard_budgets"]["latency_from_population"] is None
