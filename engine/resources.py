"""The engine's resource samples: its CPU and memory (psutil) and each GPU's use (NVML), every few seconds.

A ``Sampler`` thread, started by the server for every job, journals a ``ResourcesSampled`` event
every ``FTC_RESOURCES_S`` seconds (default 5; the first after a second), so a console shows the
figures live and a reattached one their history. Sampling is cheap (a few /proc reads and NVML
queries) and holds no lock the job uses: it never slows a step.

GPUs come from NVML (``pynvml``, the nvidia-ml-py package) when it imports and initialises; with
no NVIDIA driver, or any NVML error, the samples have no GPUs and engine.log says so once. The
NVML calls all go through ``nvml_module`` and ``gpu_samples``, so tests fake the module there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import psutil

from engine import protocol

DEFAULT_EVERY_S = 5.0
FIRST_AFTER_S = 1.0  # the first sample soon, so a console has figures before the first interval


def interval_s() -> float:
    """Seconds between samples: FTC_RESOURCES_S, else DEFAULT_EVERY_S (a bad value: the default)."""
    try:
        value = float(os.environ.get("FTC_RESOURCES_S") or DEFAULT_EVERY_S)
    except ValueError:
        return DEFAULT_EVERY_S
    return value if value > 0 else DEFAULT_EVERY_S


def nvml_module(log: Callable[[str], None]) -> Any:
    """pynvml, initialised, or None when there is no usable NVIDIA driver (said once in ``log``)."""
    try:
        import pynvml
    except ImportError:
        log("GPU figures off: nvidia-ml-py (pynvml) is not installed")
        return None
    try:
        pynvml.nvmlInit()
    except Exception as exc:  # NVMLError_LibraryNotFound, _DriverNotLoaded, ...: no GPUs, not a failure
        log(f"no GPU figures: NVML cannot start ({exc or type(exc).__name__})")
        return None
    return pynvml


def _field(read: Callable[[Any], Any], handle: Any) -> Any:
    """One NVML figure, or None when this GPU does not report it (NVMLError_NotSupported and the like)."""
    try:
        return read(handle)
    except Exception:
        return None


def gpu_samples(nvml: Any) -> list[protocol.GpuSample]:
    """Each GPU's utilisation, memory, temperature and power as NVML reports them now."""
    gpus = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        name = _field(nvml.nvmlDeviceGetName, handle)
        util = _field(lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu, handle)
        memory = _field(nvml.nvmlDeviceGetMemoryInfo, handle)
        temp = _field(lambda h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU), handle)
        power_mw = _field(nvml.nvmlDeviceGetPowerUsage, handle)
        gpus.append(
            protocol.GpuSample(
                index=index,
                name=name.decode() if isinstance(name, bytes) else str(name or ""),
                utilization=None if util is None else float(util),
                memory_used=None if memory is None else int(memory.used),
                memory_total=None if memory is None else int(memory.total),
                temperature_c=None if temp is None else float(temp),
                power_w=None if power_mw is None else power_mw / 1000.0,
            )
        )
    return gpus


class Sampler:
    """Samples the engine process, the host and the GPUs; ``start`` runs it on its own thread.

    ``describe()`` gives the job's device and precision ({"device": "GPU:0", "precision":
    "mixed_bfloat16"}; empty until the job knows). ``skip()`` true skips a sample (a stop is on its
    way: nothing comes between its checkpoint and the job's end). ``stop`` returns once no sample
    can be emitted.
    """

    def __init__(
        self,
        emit: Callable[[protocol._Body], Any],
        log: Callable[[str], None],
        *,
        every_s: float | None = None,
        describe: Callable[[], dict[str, str]] = dict,
        skip: Callable[[], bool] = lambda: False,
    ) -> None:
        self.emit, self.log = emit, log
        self.every_s = interval_s() if every_s is None else every_s
        self.describe, self.skip = describe, skip
        self.process = psutil.Process()
        self.process.cpu_percent(None)  # the first call starts the measurement: it returns 0
        self._nvml: Any = None
        self._nvml_tried = False
        self._stop = threading.Event()
        self._emitting = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="engine-resources", daemon=True)

    def sample(self) -> protocol.ResourcesSampled:
        """The figures now; an NVML error drops the GPUs from this sample and later ones (said once)."""
        with self.process.oneshot():
            cpu = self.process.cpu_percent(None)
            rss = self.process.memory_info().rss
        host = psutil.virtual_memory()
        gpus: list[protocol.GpuSample] = []
        if not self._nvml_tried:
            self._nvml_tried = True
            self._nvml = nvml_module(self.log)
        if self._nvml is not None:
            try:
                gpus = gpu_samples(self._nvml)
            except Exception as exc:  # a driver gone mid-run: no GPU figures from now on, never a failure
                self.log(f"GPU figures off: NVML failed ({exc or type(exc).__name__})")
                self._nvml = None
        job = self.describe()
        return protocol.ResourcesSampled(
            cpu_percent=round(cpu, 1),
            rss=rss,
            host_memory_used=host.total - host.available,
            host_memory_total=host.total,
            cpu_count=psutil.cpu_count(),
            gpus=gpus,
            device=job.get("device", ""),
            precision=job.get("precision", ""),
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        with self._emitting:  # a sample being emitted finishes first; none starts after
            pass

    def _run(self) -> None:
        wait = min(FIRST_AFTER_S, self.every_s)
        while not self._stop.wait(wait):
            wait = self.every_s
            if self.skip():
                continue
            try:
                body = self.sample()
                with self._emitting:
                    if self._stop.is_set():
                        return
                    self.emit(body)
            except OSError:  # the journal is closed or the disk full: the engine ends; samples can wait
                return
            except Exception as exc:  # a sampling bug must not touch the job: log it, sample on
                self.log(f"resource sample failed: {exc!r}")
