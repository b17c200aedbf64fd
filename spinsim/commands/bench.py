"""``spinsim bench``: time the fast engines against the torch reference, in one process.

For each case of :mod:`spinsim.bench.cases` and each engine kind: a warm-up step,
then the median of several timed repeats; prints sweeps/s, flips/ns and the
fast/reference ratio with the device and thread count, and writes the rows
with a description of the machine to a JSON file in the run directory.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from spinsim.bench import cases as bench
from spinsim.config import build
from spinsim.config.build import output_path
from spinsim.errors import ConfigError, make_folder
from spinsim.version import __version__

log = logging.getLogger(__name__)
ENGINE_KINDS = ("reference", "fast")


@dataclass
class BenchResult:
    path: Path
    rows: list[dict]
    machine: dict


def case_names(value) -> list[str]:
    """``cases``: ``default``, ``all`` or a list of registered names."""
    value = build.plain(value)
    allowed = f"default, all, or a list of: {', '.join(bench.CASES)}"
    if value == "default":
        return list(bench.DEFAULT_CASES)
    if value == "all":
        return list(bench.CASES)
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ConfigError("cases", value, allowed)
    for name in names:
        if name not in bench.CASES:
            raise ConfigError("cases", name, f"no such case; choose {allowed}")
    return names


def engine_kinds(value) -> list[str]:
    value = build.plain(value)
    kinds = [value] if isinstance(value, str) else value
    if not isinstance(kinds, list) or not kinds or any(k not in ENGINE_KINDS for k in kinds):
        raise ConfigError("engines", value, f"a list of {', '.join(ENGINE_KINDS)}")
    return kinds


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# What each instruction set of the C kernels computes with (spinsim.engines.cpu.compiled).
ISA_WORDS = {
    "avx512": "512-bit vectors, VAES: two AES blocks an instruction",
    "avx2": "256-bit vectors, AES-NI: one AES block an instruction",
    "baseline": "64-bit words, AES in software from T-tables",
}


def numba_target() -> str:
    """The CPU numba compiles for (``NUMBA_CPU_NAME`` or the host's) and, for the host, whether
    it has AVX-512, AVX2 and AES-NI: what the compiled CPM, site and cluster kernels use."""
    try:
        import numba
        from llvmlite import binding
    except ImportError:
        return "numba not installed"
    name = numba.config.CPU_NAME
    if name and name != "host":
        return f"{name} (NUMBA_CPU_NAME)"
    features = set(binding.get_host_cpu_features().flatten().split(","))
    has = [label for flag, label in (("+avx512f", "AVX-512"), ("+avx2", "AVX2"), ("+aes", "AES-NI"),
                                     ("+vaes", "VAES")) if flag in features]  # fmt: skip
    return f"{binding.get_host_cpu_name()} ({', '.join(has) or 'no AVX2'})"


def compiled_target() -> str:
    """One line: the C kernels' instruction set with what it computes with, and numba's target."""
    from spinsim.engines.cpu import compiled

    reason = compiled.missing()
    if reason is not None:
        return f"no C kernels; numba {numba_target()}"
    return f"C kernels {compiled.isa()} ({ISA_WORDS[compiled.isa()]}); numba {numba_target()}"


def describe_machine(device: torch.device) -> dict:
    info = {
        "device": build.describe_device(device),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "spinsim_version": __version__,
        "torch_version": str(torch.__version__),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    }
    from spinsim.engines.cpu import compiled

    if compiled.missing() is None:
        info["multispin_isa"] = compiled.isa()  # the instruction set of the compiled Ising kernels
    info["compiled_target"] = compiled_target()
    try:
        import numba

        info["numba_version"] = numba.__version__
        info["numba_threads"] = numba.get_num_threads()
        info["numba_threading_layer"] = numba.threading_layer()
    except (ImportError, ValueError):  # ValueError: no numba kernel ran, so no threading layer yet
        pass
    return info


def results_table(rows: list[dict], machine: dict) -> Table:
    title = f"spinsim bench on {machine['device']}, CPU: {machine['cpu']} ({machine['cores']} cores)"
    if machine.get("compiled_target"):
        title += f"\ncompiled for: {machine['compiled_target']}"
    table = Table(title=title)
    for name in ("case", "engine", "threads", "steps/s", "updates/ns", "x reference"):
        table.add_column(name, justify="left" if name in ("case", "engine") else "right", no_wrap=True)
    for row in rows:
        table.add_row(
            row["case"],
            row["engine"],
            str(row["threads"]),
            f"{row['steps_per_s']:.4g} {row['step_unit']}/s",
            f"{row['updates_per_ns']:.4g} {row['update_unit']}/ns",
            "" if row["ratio"] is None else f"{row['ratio']:.3g}x",
        )
    return table


def run(cfg: DictConfig) -> BenchResult:
    """Run the benchmark that ``cfg`` (``conf/bench.yaml`` composed) describes."""
    names = case_names(cfg.cases)
    kinds = engine_kinds(cfg.engines)
    repeats = build.at_least("repeats", cfg.repeats, 1)
    reference_repeats = build.at_least("reference_repeats", cfg.reference_repeats, 1)
    min_seconds = float(cfg.min_seconds)
    if not min_seconds >= 0:
        raise ConfigError("min_seconds", cfg.min_seconds, "must be a number >= 0")
    settle = float(cfg.settle_seconds)
    if not settle >= 0:
        raise ConfigError("settle_seconds", cfg.settle_seconds, "must be a number >= 0")
    device = build.device(cfg.device)
    threads = build.plain(cfg.device.threads)
    path = output_path(cfg.output)
    machine = describe_machine(device)
    log.info("benchmarking %s on %s", ", ".join(names), machine["device"])

    rows: list[dict] = []
    for name in names:
        case = bench.CASES[name]
        log.info("%s: %s", name, case.description)
        rows += bench.run_case(case, device, threads, repeats, reference_repeats, min_seconds, kinds, settle)

    machine["load_average_after"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
    make_folder(path.parent, path)
    path.write_text(json.dumps({"machine": machine, "results": rows}, indent=2) + "\n")
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(results_table(rows, machine))
    log.info("results in %s", path)
    return BenchResult(path, rows, machine)
