"""make bench's goal table: ratios are taken round by round, medians decide, a peer that did not run is said so."""

from __future__ import annotations

from bench.run import goal_rows


def _pipeline(idle: list[float], sustained: list[float], half_p95: list[float], eighty_p95: list[float]) -> dict:
    return {
        "idle": [{"total_p50_seconds": value} for value in idle],
        "sustained": [{"per_second": value} for value in sustained],
        "half": [{"p95_seconds": value, "p99_seconds": value * 1.5} for value in half_p95],
        "eighty": [{"p95_seconds": value} for value in eighty_p95],
    }


def test_each_figure_is_the_median_of_round_by_round_ratios_against_its_goal():
    images = {
        "library": [4.0, 5.0, 3.0],
        "direct_libvips": [4.0, 4.0, 4.0],
        "pillow": [2.0, 2.0, 2.0],
        "sharp": [None, None, None],  # Node.js missing
    }
    pipeline = _pipeline([0.5, 0.9, 0.6], [3.6, 3.0, 4.4], [1.0, 3.0, 1.5], [6.0, 4.0, 5.5])
    rows = {row["figure"]: row for row in goal_rows(images, pipeline, cores=2)}

    direct = rows["image library ÷ direct libvips"]
    assert (direct["median"], direct["min"], direct["max"]) == (1.0, 0.75, 1.25)
    assert direct["met"] is True
    assert rows["image library ÷ Pillow"]["median"] == 2.0
    assert rows["image library ÷ Pillow"]["met"] is True
    assert rows["image library ÷ sharp"]["met"] is None  # not run: no verdict
    assert rows["pipeline sustained rate ÷ direct libvips"]["median"] == 0.9
    assert rows["idle latency p50 (s)"]["median"] == 0.6
    assert rows["idle latency p50 (s)"]["met"] is True
    assert rows["50 % load latency p95 (s)"]["met"] is True  # 1.5 < 2
    assert rows["50 % load latency p99 (s)"]["median"] == 2.25
    assert rows["80 % load latency p95 (s)"]["met"] is False  # 5.5 is not under 5
    assert rows["pipeline photos/s per core"]["median"] == 1.8
    assert rows["pipeline photos/s per core"]["met"] is False
