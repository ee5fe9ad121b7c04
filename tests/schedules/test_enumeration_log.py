"""The append-only enumeration log that `nacos pretune` and `benchmarks/nb201_records.py` resume from."""

import json

from schedules.space_tasks import read_enumeration_log


def test_a_torn_last_line_is_dropped_and_the_rest_kept(tmp_path):
    log = tmp_path / "tasks.partial.jsonl"
    rows = [{"index": 0, "workloads": [{"a": 1}], "mods": {"h0": "m0"}},
            {"index": 3, "workloads": [{"b": 2}], "mods": {"h1": "m1"}}]
    log.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"index": 5, "workl', encoding="utf-8")
    done, mods = read_enumeration_log(log, "index")
    assert done == {0: [{"a": 1}], 3: [{"b": 2}]} and mods == {"h0": "m0", "h1": "m1"}
    # keyed by another field (the record set's "row"), and a missing log is empty
    log.write_text(json.dumps({"row": 7, "workloads": [], "mods": {}}) + "\n", encoding="utf-8")
    assert read_enumeration_log(log, "row") == ({7: []}, {})
    assert read_enumeration_log(tmp_path / "absent.jsonl", "index") == ({}, {})
