import math

import pytest

from nacos.config import RunConfig, config_from_dict, load_config
from nacos.errors import ConfigError


def test_defaults_validate_and_round_trip():
    cfg = load_config()
    assert cfg == RunConfig()
    assert config_from_dict(cfg.to_dict()) == cfg


def test_yaml_and_toml_files_with_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("mode: baseline\nbudgets:\n  latency_ms: 2.5\ntuning:\n  trials_per_workload: 8\n")
    cfg = load_config(tmp_path / "c.yaml", {"tuning": {"repeats": 7}})
    assert cfg.mode == "baseline" and cfg.budgets.latency_ms == 2.5
    assert cfg.tuning.trials_per_workload == 8 and cfg.tuning.repeats == 7
    (tmp_path / "c.toml").write_text('mode = "one-stage"\nobjectives = ["accuracy", "latency_ms", "params"]\n'
                                     '[strategy]\nname = "nsga2"\n')
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.strategy.name == "nsga2" and cfg.objectives == ("accuracy", "latency_ms", "params")


@pytest.mark.parametrize("data, message", [
    ({"colour": 1}, "colour: unknown key"),
    ({"budgets": {"latency": 1}}, "budgets.latency: unknown key"),
    ({"mode": "three-stage"}, "mode: unknown mode"),
    ({"trials": "ten"}, "trials: must be an integer"),
    ({"trials": 2.5}, "trials: must be an integer"),
    ({"trials": -3}, "trials: must be in"),
    ({"trials": 10 ** 12}, "trials: must be in"),
    ({"budgets": {"latency_ms": -1}}, "budgets.latency_ms: must be > 0"),
    ({"budgets": {"latency_ms": math.nan}}, "budgets.latency_ms: must be a finite number"),
    ({"budgets": {"active_memory_budget_mb": math.inf}}, "budgets.active_memory_budget_mb: must be a finite"),
    ({"budgets": {"memory_budgets_mb": [1, "x"]}}, r"budgets.memory_budgets_mb\[1\]: must be a number"),
    ({"budgets": 5}, "budgets: must be a table"),
    ({"objectives": ["accuracy", "speed"]}, "objectives: unknown objective 'speed'"),
    ({"objectives": []}, "objectives: at least one"),
    ({"strategy": {"name": "bayes"}}, "strategy.name: unknown strategy"),
    ({"strategy": {"sample_size": 50}}, "strategy.sample_size"),
    ({"space": {"kernel_sizes": [2]}}, "space: space.kernel_sizes"),
    ({"space": {"colours": [2]}}, "space: space: unknown key"),
    ({"target": "tpu"}, "target: must be llvm, cuda, rpc://HOST:PORT/KEY or accel://HARDWARE"),
    ({"tuning": {"screen_min_samples": 1}}, "tuning.screen_min_samples"),
    ({"tuning": {"screen_margin": -0.5}}, "tuning.screen_margin"),
    ({"tuning": {"screening": "yes"}}, "tuning.screening"),
    ({"tuning": {"trials_per_workload": True}}, "tuning.trials_per_workload: must be an integer"),
    ({"tuning": {"timeout_s": 0}}, "tuning.timeout_s: must be > 0"),
    ({"tuning": {"timeout_s": -5}}, "tuning.timeout_s: must be > 0"),
    ({"tuning": {"timeout_s": math.nan}}, "tuning.timeout_s: must be a finite number"),
    ({"tuning": {"timeout_s": math.inf}}, "tuning.timeout_s: must be a finite number"),
    ({"tuning": {"timeout_s": None}}, "tuning.timeout_s: must be a number"),
    ({"tuning": {"timeout_s": "1h"}}, "tuning.timeout_s: must be a number"),
    ({"tuning": {"worker_memory_mb": -1}}, "tuning.worker_memory_mb: must be 0"),
    ({"tuning": {"worker_memory_mb": 512.5}}, "tuning.worker_memory_mb: must be an integer"),
    ({"tuning": {"worker_memory_mb": 2 ** 40}}, "tuning.worker_memory_mb: must be 0"),
])
def test_bad_configs_name_the_key(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: config file not found"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("mode: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    (tmp_path / "bad.toml").write_text("mode = \n")
    with pytest.raises(ConfigError, match="bad.toml: not valid TOML"):
        load_config(tmp_path / "bad.toml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level must be a table"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "c.ini").write_text("")
    with pytest.raises(ConfigError, match="must be .yaml"):
        load_config(tmp_path / "c.ini")


A64_DEVICE = "rpc://127.0.0.1:9190/rasp4?mtriple=aarch64-linux-gnu&mcpu=cortex-a72"


def test_the_config_refuses_the_explicit_searcher_for_a_foreign_device():
    from nacos.config import TuningConfig

    with pytest.raises(ConfigError, match="explicit times its configs on this CPU"):
        RunConfig(mode="two-stage", target=A64_DEVICE, tuning=TuningConfig(searcher="explicit"))
    assert RunConfig(mode="two-stage", target=A64_DEVICE, tuning=TuningConfig(searcher="auto")).target == A64_DEVICE
    with pytest.raises(ConfigError, match="unknown option"):
        RunConfig(target="rpc://h:1/k?bogus=1")
