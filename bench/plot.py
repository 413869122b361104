"""bench/results.png: transition throughput by number of writers, Lifeline beside the raw
asyncpg baseline (matplotlib, the optional `bench` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt


def draw(results: dict[str, Any], path: Path) -> Path | None:
    bench = next((b for b in results["benchmarks"] if b["name"] == "throughput"), None)
    if bench is None:
        return None
    by = bench["metrics"]["by_writers"]
    writers = sorted(int(w) for w in by)
    life = [by[str(w)]["lifeline"]["transitions_per_s"] for w in writers]
    base = [by[str(w)]["baseline"]["transitions_per_s"] for w in writers]
    ratio = [by[str(w)]["ratio"] for w in writers]
    machine = bench["machine"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.6),
                                      gridspec_kw={"width_ratios": [3, 2]})
    x = range(len(writers))
    width = 0.38
    bars_life = left.bar([i - width / 2 for i in x], life, width, label="Lifeline "
                         "(TransitionService.apply)", color="#3b6fb6")
    bars_base = left.bar([i + width / 2 for i in x], base, width, label="raw asyncpg baseline "
                         "(BEGIN; CAS UPDATE; ledger INSERT; COMMIT)", color="#b0b0b0")
    for bars in (bars_life, bars_base):
        left.bar_label(bars, labels=[f"{v:,.0f}" for v in bars.datavalues], fontsize=8,
                       padding=2)
    left.set_xticks(list(x), [str(w) for w in writers])
    left.set_xlabel("concurrent writers")
    left.set_ylabel("transitions / s (ledger row included)")
    left.set_title(f"Uniform over {bench['params']['members']:,} members, "
                   f"{bench['params']['seconds_per_system_and_writers']:g} s each", fontsize=10)
    left.legend(fontsize=8, loc="upper left")
    left.set_ylim(0, max(base + life) * 1.25)
    right.plot(writers, ratio, marker="o", color="#3b6fb6", label="Lifeline / baseline")
    right.axhline(0.6, color="#c0392b", linestyle="--", linewidth=1, label="target 0.6 at 16")
    for w, r in zip(writers, ratio, strict=True):
        right.annotate(f"{r:.2f}", (w, r), textcoords="offset points", xytext=(0, 6),
                       ha="center", fontsize=8)
    right.set_xscale("log", base=2)
    right.set_xticks(writers, [str(w) for w in writers])
    right.set_ylim(0, 1.1)
    right.set_xlabel("concurrent writers")
    right.set_title("ratio", fontsize=10)
    right.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"Lifeline transition throughput - {machine['cores']} cores "
                 f"({machine['cpu']}), Python {machine['python']}, PostgreSQL "
                 f"{machine['postgresql']} - {bench['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
