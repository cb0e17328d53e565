"""The resource samples: psutil's figures for real, NVML's through a fake module, and an engine's journal."""

from __future__ import annotations

import sys
import types
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from engine import protocol, resources
from engine.journal import read_all
from engine.resources import Sampler
from tests.conftest import wait_for

GiB = 1024**3


class FakeNVMLError(Exception):
    pass


def fake_nvml(init: Callable[[], None] = lambda: None) -> types.ModuleType:
    """A pynvml with two GPUs; the second reports no power (NotSupported), as some boards do."""
    nvml: Any = types.ModuleType("pynvml")
    nvml.NVMLError = FakeNVMLError
    nvml.NVML_TEMPERATURE_GPU = 0
    nvml.nvmlInit = init
    nvml.nvmlDeviceGetCount = lambda: 2
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"handle-{i}"
    nvml.nvmlDeviceGetName = lambda h: b"NVIDIA H200" if h == "handle-0" else "NVIDIA H200"
    nvml.nvmlDeviceGetUtilizationRates = lambda h: types.SimpleNamespace(gpu=87 if h == "handle-0" else 3)
    nvml.nvmlDeviceGetMemoryInfo = lambda h: types.SimpleNamespace(used=40 * GiB, total=141 * GiB)
    nvml.nvmlDeviceGetTemperature = lambda h, sensor: 61

    def power(h: str) -> int:
        if h == "handle-1":
            raise FakeNVMLError("Not Supported")
        return 512_300  # milliwatts

    nvml.nvmlDeviceGetPowerUsage = power
    return nvml


def _sampler(log: list[str], **kw: Any) -> Sampler:
    return Sampler(lambda body: None, log.append, **kw)


def test_a_sample_has_each_gpu_as_nvml_reports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    log: list[str] = []
    sample = _sampler(log, describe=lambda: {"device": "GPU:0", "precision": "mixed_bfloat16"}).sample()
    first, second = sample.gpus
    assert first == protocol.GpuSample(
        index=0,
        name="NVIDIA H200",
        utilization=87.0,
        memory_used=40 * GiB,
        memory_total=141 * GiB,
        temperature_c=61.0,
        power_w=512.3,
    )
    assert second.name == "NVIDIA H200" and second.utilization == 3.0 and second.power_w is None
    assert (sample.device, sample.precision) == ("GPU:0", "mixed_bfloat16")
    assert log == []


def test_without_a_driver_the_samples_have_no_gpus_and_the_log_says_so_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_driver() -> None:
        raise FakeNVMLError("NVML Shared Library Not Found")

    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml(no_driver))
    log: list[str] = []
    sampler = _sampler(log)
    samples = [sampler.sample() for _ in range(3)]
    assert [s.gpus for s in samples] == [[], [], []]
    assert len(log) == 1 and "NVML Shared Library Not Found" in log[0]
    assert samples[0].rss  # the rest of the sample is there


def test_a_driver_that_fails_mid_run_turns_the_gpu_figures_off(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_nvml()
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    log: list[str] = []
    sampler = _sampler(log)
    assert len(sampler.sample().gpus) == 2

    def gone() -> int:
        raise FakeNVMLError("GPU is lost")

    nvml.nvmlDeviceGetCount = gone
    assert sampler.sample().gpus == [] and sampler.sample().gpus == []
    assert len(log) == 1 and "GPU is lost" in log[0]


def test_the_process_and_host_figures_are_psutils(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails: no GPU figures
    log: list[str] = []
    sampler = _sampler(log)
    sum(i * i for i in range(2_000_000))  # some CPU time to measure
    sample = sampler.sample()
    me = psutil.Process()
    assert 0 <= sample.cpu_percent <= 100 * (psutil.cpu_count() or 1)  # type: ignore[operator]
    assert 10 * 2**20 < sample.rss <= me.memory_info().rss * 2  # type: ignore[operator]
    assert 0 < sample.host_memory_used < sample.host_memory_total == psutil.virtual_memory().total  # type: ignore[operator]
    assert sample.cpu_count == psutil.cpu_count() and sample.gpus == []
    assert len(log) == 1 and "not installed" in log[0]


def test_the_sampler_thread_samples_until_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_nvml())
    got: list[Any] = []
    sampler = Sampler(got.append, lambda text: None, every_s=0.05)
    sampler.start()
    wait_for(lambda: len(got) >= 3, what="three samples")
    sampler.stop()
    count = len(got)
    assert not sampler._thread.is_alive() and len(got) == count
    assert all(isinstance(s, protocol.ResourcesSampled) and len(s.gpus) == 2 for s in got)


def test_the_interval_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTC_RESOURCES_S", "0.5")
    assert resources.interval_s() == 0.5
    for bad in ("soon", "0", "-3"):
        monkeypatch.setenv("FTC_RESOURCES_S", bad)
        assert resources.interval_s() == resources.DEFAULT_EVERY_S


def test_an_engine_journals_its_resources(start_selftest, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FTC_RESOURCES_S", "0.2")
    paths = start_selftest(steps=150, step_s=0.01)
    wait_for(lambda: read_all(paths.events)[-1].type == "engine_stopped", what="the end")
    events = read_all(paths.events)
    samples = [e.body for e in events if e.type == "resources_sampled"]
    assert len(samples) >= 3
    assert all(s.rss and s.rss > 10 * 2**20 and s.device == "CPU" for s in samples)  # type: ignore[union-attr]
    assert [e.type for e in events][-2:] == ["job_finished", "engine_stopped"]


def test_the_device_names_replicas_as_what_they_are() -> None:
    """Two CPU worker processes are not '2 GPUs' (found in a real 2-worker run on a CPU machine)."""
    from types import SimpleNamespace

    import tensorflow as tf

    from engine.train.reporting import device_text

    if tf.config.list_logical_devices("GPU"):
        pytest.skip("the CPU wording is for a machine without GPUs")

    def trainer(replicas: int, workers: int | None) -> Any:
        group = None if workers is None else SimpleNamespace(spec=SimpleNamespace(size=workers))
        return SimpleNamespace(strategy=SimpleNamespace(num_replicas_in_sync=replicas), group=group)

    assert device_text(trainer(1, None)) == "CPU"
    assert device_text(trainer(2, 2)) == "2 workers x CPU"
    assert device_text(trainer(2, None)) == "2 CPU replicas"
