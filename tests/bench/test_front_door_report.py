"""make bench's front-door table: each way's ratio to raw S3 PUT, round by round, against its goal."""

from __future__ import annotations

import statistics

from bench.front_door import METHODS, RAW, RAW_SHA256, report


def _result(rates: dict[str, list[float]]) -> dict:
    raw = rates[RAW]
    ratios = {
        method: [rate / base for rate, base in zip(values, raw, strict=True)]
        for method, values in rates.items()
        if method != RAW
    }
    return {
        "clients": 32,
        "uploads": 64,
        "runs": 3,
        "megabytes_each": 4.2,
        "rates": rates,
        "ratios": ratios,
        "medians": {method: statistics.median(values) for method, values in rates.items()},
        "median_ratios": {method: statistics.median(values) for method, values in ratios.items()},
    }


def test_each_way_is_reported_against_its_goal_with_the_spread():
    rates = {
        RAW: [10.0, 20.0, 10.0],
        RAW_SHA256: [9.0, 16.0, 10.0],  # 0.9, 0.8, 1.0
        "multipart POST": [7.0, 10.0, 5.0],  # ratios 0.7, 0.5, 0.5: median 0.5, under 0.6
        "tus": [6.0, 12.0, 5.0],  # 0.6, 0.6, 0.5: median 0.6, over 0.5
        "direct": [9.0, 19.0, 9.5],  # 0.9, 0.95, 0.95
    }
    lines = report(_result(rates))
    rows = {line.split(" | ")[0].lstrip("| "): line for line in lines[2:] if line.startswith("| ")}
    assert set(rows) == set(METHODS)
    assert rows["multipart POST"].endswith("| 0.50 (0.50-0.70) | ≥ 0.6 | no |")
    assert rows["tus"].endswith("| 0.60 (0.50-0.60) | ≥ 0.5 | yes |")
    assert rows["direct"].endswith("| 0.95 (0.90-0.95) | ≥ 0.9 | yes |")
    assert rows[RAW] == "| raw S3 PUT | 10.0 | 1.00 | | |"
    assert rows[RAW_SHA256] == "| raw S3 PUT, SHA-256 | 10.0 | 0.90 (0.80-1.00) | | |"
    # direct against the PUT bound to the same hash, round by round: 9/9, 19/16, 9.5/10
    assert "direct ÷ raw S3 PUT, SHA-256: 1.00 (0.95-1.19), the cost of the gateway's part alone." in lines


def test_the_cpu_each_way_costs_is_reported_per_part_when_measured():
    rates = {method: [10.0, 10.0, 10.0] for method in METHODS}
    result = _result(rates)
    result["cpu_ms"] = {
        "raw S3 PUT": {"client": 59.0, "gateway": 2.0, "s3 server": 409.0, "kafka": 0.0},
        "direct": {"client": 29.0, "gateway": 21.0, "s3 server": 318.0, "kafka": 4.0},
    }
    lines = report(result)
    assert "| ms of CPU per upload (median) | client | gateway | s3 server | kafka | total |" in lines
    assert "| raw S3 PUT | 59 | 2 | 409 | 0 | 470 |" in lines
    assert "| direct | 29 | 21 | 318 | 4 | 372 |" in lines
    assert not any("CPU" in line for line in report(_result(rates))), "no CPU table when none was measured"


def test_a_run_of_some_ways_reports_those_beside_the_raw_put():
    lines = report(_result({RAW: [10.0, 20.0, 10.0], "direct": [9.0, 19.0, 9.5]}))
    rows = [line.split(" | ")[0].lstrip("| ") for line in lines[2:] if line.startswith("| ")]
    assert rows == [RAW, "direct"]
    assert not any(RAW_SHA256 in line for line in lines), "no direct ÷ bound PUT without the bound PUT"


def test_a_run_that_could_not_drop_the_page_cache_says_so():
    rates = {RAW: [10.0, 10.0, 10.0], "direct": [9.0, 9.0, 9.0]}
    note = "The page cache was not dropped between ways"
    for dropped, said in ((False, True), (True, False)):
        result = _result(rates) | {"page_cache_dropped": dropped}
        assert any(line.startswith(note) for line in report(result)) is said
