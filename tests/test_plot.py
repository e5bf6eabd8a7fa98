"""``hwemu run --plot``'s figures (issue 14, item 9), read back through their artists:
min_nr lines and a y axis from 0, markers for waits, NULL returns and KASAN reports,
watermarks on a log scale of free memory, and operations per second."""
import pytest
from conftest import CONFIGS

from hwemu.config import load_config
from hwemu.runs import Run
from hwemu.runs.plot import figures, plot

pytest.importorskip("matplotlib")

MIB = 4096 / (1 << 20)


def synthetic_result():
    """Four samples, 50 ms apart, of a pool of min_nr 64 that ran dry between the
    second and the third (two waits there, one NULL), with a KASAN report in the last
    interval; two nodes whose zones have watermarks."""
    return {
        "machine": "m",
        "pools": {"bio": {"min_nr": 64, "waits": 2, "alloc_null": 1}},
        "kasan_reports": [{"bug_type": "use-after-free", "text": "..."}],
        "zones": [{"node": 0, "zone": "DMA", "min": 10, "low": 12, "high": 14},
                  {"node": 0, "zone": "DMA32", "min": 300, "low": 400, "high": 500},
                  {"node": 1, "zone": "DMA32", "min": 350, "low": 450, "high": 550}],
        "samples": {
            "t": [0.0, 0.05, 0.1, 0.15],
            "ops": [0, 100, 300, 400],
            "pools": {"bio": [64, 64, 60, 64]},
            "nodes": {"0": [60000, 20000, 700, 650], "1": [60000, 800, 700, 690]},
            "pool_events": {"bio": {"min_nr": [64, 64, 64, 64], "lowest": [64, 50, 0, 40],
                                    "allocs": [0, 100, 300, 400],
                                    "frees": [0, 90, 280, 410],
                                    "waits": [0, 0, 2, 2], "nulls": [0, 0, 1, 1]}},
            "kasan_reports": [0, 0, 0, 1],
        },
    }


def by_label(artists):
    return {a.get_label(): a for a in artists}


def test_pool_fill_has_min_nr_a_zero_based_axis_and_event_markers():
    ax = figures(synthetic_result())["pool-fill.png"].axes[0]
    lines = by_label(ax.lines)
    assert list(lines["pool bio: min_nr"].get_ydata()) == [64] * 4
    assert list(lines["pool bio"].get_ydata()) == [64, 64, 60, 64]
    bottom, top = ax.get_ylim()
    assert bottom == 0 and top >= 64
    marks = by_label(ax.collections)
    waits = marks["waits in mempool_alloc() (2)"]
    assert waits.get_offsets().tolist() == [[0.1, 0.0]]   # where the reserve was empty
    assert marks["NULL returns (1)"].get_offsets().tolist() == [[0.1, 0.0]]
    kasan = marks["KASAN reports (1)"]
    assert [seg[0][0] for seg in kasan.get_segments()] == [0.15]
    low = marks["pool bio: lowest between samples"]
    assert low.get_paths()   # the band down to the lowest fill
    assert "pool bio: min_nr" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_free_memory_is_log_scaled_with_each_nodes_watermarks():
    ax = figures(synthetic_result())["free-memory.png"].axes[0]
    assert ax.get_yscale() == "log"
    lines = by_label(ax.lines)
    for node, marks in (("0", {"min": 310, "low": 412, "high": 514}),
                        ("1", {"min": 350, "low": 450, "high": 550})):
        assert list(lines[f"node {node}"].get_ydata())[-1] == pytest.approx(
            synthetic_result()["samples"]["nodes"][node][-1] * MIB)
        for key, pages in marks.items():
            line = lines[f"node {node} watermark {key}"]
            assert list(line.get_ydata()) == pytest.approx([pages * MIB] * 2)
    # The pressure phase (under 3 MiB) is within the axis, far below the idle 234 MiB.
    bottom, top = ax.get_ylim()
    assert bottom < 600 * MIB and top > 60000 * MIB


def test_ops_per_second_of_allocations_and_frees():
    ax = figures(synthetic_result())["ops.png"].axes[0]
    lines = by_label(ax.lines)
    allocs = lines["pool bio: allocations/s"]
    assert list(allocs.get_xdata()) == [0.05, 0.1, 0.15]
    assert list(allocs.get_ydata()) == pytest.approx([2000, 4000, 2000])
    assert list(lines["pool bio: frees/s"].get_ydata()) == pytest.approx([1800, 3800, 2600])
    assert list(lines["pool bio: allocations/s, last second"].get_ydata()) == \
        pytest.approx([2000, 3000, 400 / 0.15])
    assert ax.get_ylim()[0] == 0


def test_a_run_samples_what_the_plots_mark_and_writes_three_pngs(tmp_path):
    """configs/sizing.yaml (a reserve-only pool) waits between samples: the samples
    hold its lowest fill (0, which the sampled curr_nr may never show) and its waits,
    and the plot marks them."""
    from PIL import Image
    result = Run(load_config(CONFIGS / "sizing.yaml")).execute()
    events = result["samples"]["pool_events"]["requests"]
    t = result["samples"]["t"]
    assert all(len(v) == len(t) for v in events.values())
    # Running totals (the run's own go on while its workloads stop, after the last).
    pool = result["pools"]["requests"]
    assert 0 < events["waits"][-1] <= pool["waits"]
    assert events["waits"] == sorted(events["waits"])
    assert 0 < events["allocs"][-1] <= pool["alloc_allocator"] + pool["alloc_reserve"]
    assert 0 in events["lowest"] and events["min_nr"] == [8] * len(t)
    assert result["samples"]["kasan_reports"] == [0] * len(t)
    ax = figures(result)["pool-fill.png"].axes[0]
    waits = by_label(ax.collections)[f"waits in mempool_alloc() "
                                     f"({result['pools']['requests']['waits']})"]
    assert len(waits.get_offsets()) > 0
    paths = plot(result, str(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["pool-fill.png", "free-memory.png",
                                                    "ops.png"]
    with Image.open(tmp_path / "ops.png") as img:
        assert img.text["Description"] == "x: emulated time (s); y: operations per second"
