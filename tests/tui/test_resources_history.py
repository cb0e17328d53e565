"""The monitor's Resources tab: every journalled resource sample drawn over time after a reattach
(engine CPU and RSS, each GPU's use and memory; no GPU lines without GPUs), at 80x24 and 60x20."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.pilot import Pilot

from engine.protocol import GpuSample, ResourcesSampled
from tests.tui.journals import GIB, events_in_phase, session_in_phase, write_journal
from tests.tui.pilot import until
from tests.tui.screen_text import screen_text
from tui.app import FtcApp
from tui.screens.monitor import MonitorScreen
from tui.widgets.resources import ResourceHistory, span_text, time_ticks

SAMPLES = 30


def _sample(i: int, gpus: bool) -> ResourcesSampled:
    return ResourcesSampled(
        cpu_percent=90.0 + 5 * (i % 4),
        rss=int((1.5 + i / 20) * GIB),
        host_memory_used=31 * GIB,
        host_memory_total=125 * GIB,
        cpu_count=16,
        gpus=[
            GpuSample(
                index=g,
                utilization=80.0 - 10 * g + i % 5,
                memory_used=(40 + 10 * g) * GIB,
                memory_total=141 * GIB,
            )
            for g in range(2 if gpus else 0)
        ],
        device="2 GPUs" if gpus else "CPU",
        precision="mixed_bfloat16" if gpus else "float32",
    )


def _session(root: Path, gpus: bool) -> tuple[Path, int]:
    paths = session_in_phase(root, "training")
    events = [*events_in_phase("training"), *(_sample(i, gpus) for i in range(SAMPLES))]
    write_journal(paths, events)
    return paths, len(events)


async def _resources_tab(pilot: Pilot[None], events: int, *, zoom: bool = False) -> ResourceHistory:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, MonitorScreen), what="monitor")
    monitor = app.screen
    assert isinstance(monitor, MonitorScreen)
    await until(
        pilot, lambda: monitor.feed.events_seen >= events and monitor.feed.status != "?", what="journal"
    )
    await pilot.press("t", "t", "t", *(["z"] if zoom else []))  # events, evaluation, checkpoints, resources
    history = monitor.query_one(ResourceHistory)
    if zoom:
        use = history.query_one("#resources-use")
        await until(pilot, lambda: "engine cpu" in str(use.border_title), what="the plots")
    else:
        await until(
            pilot, lambda: "engine" in screen_text(app) and "over " in screen_text(app), what="the rows"
        )
    await pilot.pause(0.1)
    return history


def _titles(history: ResourceHistory) -> str:
    return " ".join(str(history.query_one(f"#resources-{name}").border_title) for name in ("use", "memory"))


@pytest.mark.parametrize("size", [(80, 24), (60, 20)])
async def test_every_sample_is_drawn_with_each_gpu(tmp_path: Path, size: tuple[int, int]) -> None:
    paths, events = _session(tmp_path, gpus=True)
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=size) as pilot:
        history = await _resources_tab(pilot, events)
        # The training journal's own sample, then SAMPLES more, one a second (ts = T0 + seq).
        assert history.samples == SAMPLES + 1
        assert len(history.cpu.ys) == len(history.rss.ys) == SAMPLES + 1
        assert sorted(history.gpu_use) == [0, 1] and len(history.gpu_memory[1].ys) == SAMPLES
        first = next(i for i, e in enumerate(events_in_phase("training")) if isinstance(e, ResourcesSampled))
        assert history.last_ts == pytest.approx(events - 1 - first)  # ts = T0 + seq
        # Unzoomed there is no room for plots: a sparkline row each for the engine and the GPUs,
        # each ending with the newest figure.
        assert not history.plotted
        rows = [
            line for line in screen_text(app).splitlines() if re.match(r"(engine|gpu\d) +(cpu|use) ", line)
        ]
        assert [row.split()[0] for row in rows] == ["engine", "gpu0", "gpu1"], rows
        assert rows[0].rstrip().endswith(" 2.9G") and " cpu " in rows[0] and " rss " in rows[0], rows
        assert " use " in rows[2] and " mem " in rows[2] and rows[2].rstrip().endswith(" 50G"), rows
        # Use is drawn against 100% (gpu1 at 70-74% is not a full bar), memory against the GPU's.
        assert "█" not in rows[2] and "▆" in rows[2].split(" mem ")[0] and "▃" in rows[2].split(" mem ")[1], (
            rows
        )
        assert all(len(row.rstrip()) <= size[0] for row in rows)
        await pilot.press("z")  # the tabs at full height: the plots
        await until(pilot, lambda: history.plotted and "gpu1" in _titles(history), what="the plots")
        assert all(name in _titles(history) for name in ("engine cpu", "engine rss", "gpu0")), _titles(
            history
        )


async def test_without_gpus_there_are_no_gpu_lines(tmp_path: Path) -> None:
    paths, events = _session(tmp_path, gpus=False)
    # The training journal's first sample names a GPU: this session's are all without.
    write_journal(paths, [e for e in events_in_phase("training") if not isinstance(e, ResourcesSampled)]
                  + [_sample(i, False) for i in range(SAMPLES)])  # fmt: skip
    app = FtcApp(tmp_path, attach=paths.id)
    async with app.run_test(size=(80, 24)) as pilot:
        history = await _resources_tab(pilot, events - 1)
        assert history.samples == SAMPLES and not history.gpu_use
        rows = [
            line for line in screen_text(app).splitlines() if re.match(r"(engine|gpu\d) +(cpu|use) ", line)
        ]
        assert [row.split()[0] for row in rows] == ["engine"], rows
        await pilot.press("z")
        await until(pilot, lambda: "engine cpu" in _titles(history), what="the plots")
        assert "gpu" not in _titles(history) and "engine rss" in _titles(history)


def test_time_ticks_are_round_spans() -> None:
    assert time_ticks(30) == [0, 10, 20, 30]
    assert [span_text(t) for t in time_ticks(3600)] == ["0s", "15m", "30m", "45m", "1h00"]
    assert span_text(90) == "1m30" and span_text(3900) == "1h05"


@pytest.mark.parametrize(
    ("size", "zoom"),
    [((80, 24), False), ((60, 20), False), ((80, 24), True)],
    ids=["80x24", "60x20", "80x24-zoomed"],
)
def test_resources_tab_snapshot(snap_compare, tmp_path: Path, size: tuple[int, int], zoom: bool) -> None:
    paths, events = _session(tmp_path, gpus=True)
    app = FtcApp(tmp_path, attach=paths.id)

    async def shown(pilot: Pilot[None]) -> None:
        await _resources_tab(pilot, events, zoom=zoom)

    assert snap_compare(app, terminal_size=size, run_before=shown)
