"""The end-of-run table on the console."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from rich.console import Console
from rich.table import Table

from spinsim.analysis.statistics import with_error


def summary_table(summary: Mapping[str, np.ndarray], title: str) -> Table:
    table = Table(title=title)
    for name in ("T", "<e>", "<|m|>", "C", "chi", "U4", "tau_e", "tau_|m|", "n"):
        table.add_column(name, justify="right", no_wrap=True)
    for i, T in enumerate(summary["temperature"]):
        table.add_row(
            f"{T:.6g}",
            with_error(summary["e"][i], summary["e_err"][i]),
            with_error(summary["abs_m"][i], summary["abs_m_err"][i]),
            with_error(summary["C"][i], summary["C_err"][i]),
            with_error(summary["chi"][i], summary["chi_err"][i]),
            with_error(summary["U4"][i], summary["U4_err"][i]),
            f"{summary['tau_e'][i]:.3g}",
            f"{summary['tau_abs_m'][i]:.3g}",
            str(int(summary["n"][i])),
        )
    return table


def cpm_summary_table(summary: Mapping[str, np.ndarray], title: str) -> Table:
    """Final state of a cellular Potts run: one row per observable, one column per
    temperature, mean(error) over that temperature's replicas."""
    table = Table(title=title)
    table.add_column("observable", no_wrap=True)
    for T, n in zip(summary["temperature"], summary["n"]):
        table.add_column(f"T = {T:.6g} ({int(n)} replicas)", justify="right", no_wrap=True)
    for name in summary:
        if name in ("temperature", "n") or name.endswith("_err"):
            continue
        errors = summary.get(f"{name}_err", np.full(len(summary[name]), np.nan))
        table.add_row(name, *(with_error(m, e) for m, e in zip(summary[name], errors)))
    return table


def print_summary(summary: Mapping[str, np.ndarray], title: str) -> None:
    console().print(summary_table(summary, title))


def print_cpm_summary(summary: Mapping[str, np.ndarray], title: str) -> None:
    console().print(cpm_summary_table(summary, f"{title}: final state"))


def print_exchange_rates(rates: Mapping[str, np.ndarray], exchange_every: int) -> None:
    """Parallel tempering: the acceptance rate of exchanges per neighbouring temperature pair."""
    table = Table(title=f"parallel tempering: exchanges every {exchange_every} sweeps")
    for name in ("T_low", "T_high", "accepted", "attempts", "rate"):
        table.add_column(name, justify="right", no_wrap=True)
    columns = ("temperature_low", "temperature_high", "accepted", "attempts", "rate")
    for lo, hi, acc, att, rate in zip(*(rates[c] for c in columns)):
        table.add_row(f"{lo:.6g}", f"{hi:.6g}", str(int(acc)), str(int(att)), f"{rate:.3f}")
    console().print(table)


def console() -> Console:
    console = Console()
    if not console.is_terminal:  # a log file or pipe: do not squeeze into 80 columns
        console = Console(width=160)
    return console
