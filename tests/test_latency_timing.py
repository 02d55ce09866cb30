"""Interleaved timing (fastest block, per-runnable stopping, GC off), the statistic a table prices with, the
offset calibrated on whole networks, and glibc's allocator kept steady while timing."""

import gc
import json
import platform
import random
import statistics
import time
from types import SimpleNamespace

import pytest

from hwnas.cost import interleaved
from hwnas.cost.build import CALIBRATION_SEED, build_table, entries_sum, random_architecture
from hwnas.cost.interleaved import QUICK_ROUNDS, RoundsPolicy, time_interleaved
from hwnas.cost.latency import keep_freed_memory
from hwnas.cost.table import CostTable
from hwnas.errors import HwnasError
from hwnas.spaces import load_space

STEADY = RoundsPolicy(blocks=2, min_rounds=3, max_rounds=12, patience=2, tolerance=0.05, min_seconds=0.0)


def sleeper(seconds):
    return lambda: time.sleep(seconds)


def test_each_runnable_is_priced_by_its_fastest_block():
    slow, quick = time_interleaved([sleeper(0.003), lambda: None], policy=STEADY, warmup=1)
    assert slow.fastest_ms >= 2.9 and quick.fastest_ms < 0.5
    assert len(slow.samples) == STEADY.blocks * slow.rounds
    field = slow.latency_field()
    assert field["min"] == slow.fastest_ms <= field["median"] and field["count"] == len(slow.samples)


def test_a_runnable_is_timed_until_its_fastest_block_stops_improving(monkeypatch):
    clock = {"now": 0.0, "calls": 0}  # a clock that only the runnables move: no noise of this machine
    monkeypatch.setattr(interleaved, "time", SimpleNamespace(perf_counter=lambda: clock["now"]))

    def steady():
        clock["now"] += 0.001

    def improving():  # 9 ms, 8 ms, ... then 2 ms from the 8th call on
        clock["calls"] += 1
        clock["now"] += max(0.002, 0.010 - 0.001 * clock["calls"])

    steady_timed, getting_faster = time_interleaved([steady, improving], policy=STEADY, warmup=0)
    assert steady_timed.rounds == STEADY.min_rounds and steady_timed.fastest_ms == pytest.approx(1.0)
    assert getting_faster.rounds > steady_timed.rounds and getting_faster.fastest_ms < 3.5
    assert getting_faster.fastest_ms == pytest.approx(2.0)


def test_rounds_stop_at_max_rounds_and_at_max_seconds():
    (capped,) = time_interleaved([lambda: None], policy=RoundsPolicy(min_rounds=50, max_rounds=5, min_seconds=0))
    assert capped.rounds == 5
    start = time.perf_counter()
    (timed_out,) = time_interleaved([sleeper(0.01)], policy=RoundsPolicy(min_rounds=1000, max_seconds=0.3))
    assert timed_out.rounds < 1000 and time.perf_counter() - start < 2


def test_rounds_go_on_for_min_seconds():
    start = time.perf_counter()
    time_interleaved([lambda: None], policy=RoundsPolicy(min_rounds=1, patience=1, min_seconds=0.3))
    assert time.perf_counter() - start >= 0.3


def test_the_garbage_collector_is_off_while_timing_and_restored():
    seen = []
    assert gc.isenabled()
    time_interleaved([lambda: seen.append(gc.isenabled())], policy=QUICK_ROUNDS)
    assert seen and not any(seen) and gc.isenabled()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_cpu_timing_keeps_freed_memory_under_glibc():
    assert keep_freed_memory() is True and keep_freed_memory() is True


def test_a_table_prices_entries_by_the_statistic_its_meta_names(tmp_path):
    entry = {"latency_ms": {"min": 1.0, "median": 1.5, "mean": 1.6, "std": 0.1, "count": 9}, "macs": 1, "params": 1}
    assert CostTable({"latency_estimate": "min"}, {"k": entry}).value("k", "latency") == 1.0
    assert CostTable({}, {"k": entry}).value("k", "latency") == 1.5  # bundles and older tables: the median
    del entry["latency_ms"]["min"]
    path = tmp_path / "t.json"
    data = {"format": "hwnas.costtable/1", "meta": {"latency_estimate": "min"}, "entries": {"k": entry}}
    path.write_text(json.dumps(data))
    with pytest.raises(HwnasError, match=r"entry 'k' lacks latency_ms\.min, macs or params"):
        CostTable.load(path)


@pytest.fixture
def tiny(space_file):
    return load_space(str(space_file))


def test_the_offset_is_the_median_gap_of_the_calibration_networks(tiny):
    table = build_table(tiny, policy=QUICK_ROUNDS, calibration=3, progress=False)
    fit = table.meta["calibration_fit"]
    assert fit["networks"] == 3 and len(fit["measured_ms"]) == 3 and table.meta["latency_estimate"] == "min"
    assert table.offset_ms == statistics.median(fit["gap_ms"])
    first = random_architecture(tiny, random.Random(CALIBRATION_SEED))  # the first calibration network
    entries = entries_sum(table, tiny)(first)
    assert fit["gap_ms"][0] == pytest.approx(fit["measured_ms"][0] - entries)
    assert table.predict(tiny, first.choices) == pytest.approx(entries + table.offset_ms)
    uncalibrated = build_table(tiny, policy=QUICK_ROUNDS, calibration=0, progress=False)
    assert uncalibrated.offset_ms == 0.0 and "calibration_fit" not in uncalibrated.meta


def test_a_negative_calibration_is_one_clear_error(tiny):
    with pytest.raises(HwnasError, match=r"calibration -1: expected 0 or more networks"):
        build_table(tiny, policy=QUICK_ROUNDS, calibration=-1, progress=False)
