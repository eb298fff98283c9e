#!/usr/bin/env python3
"""Turns Google Benchmark JSON files from dsk's suites into one markdown summary.

Usage: bench-report.py [-o OUT.md] [--title TEXT] RESULT.json...

One section per file (its executable, device and peak from the context block dsk's suites add),
one table row per benchmark: time per iteration, GB/s (decimal, bytes read + written), items/s,
%peak and, when a suite reports them, TFLOP/s and %peak_flops. Failed benchmarks are listed with
their error instead of figures. Exits 1 when a file cannot be read or holds no benchmark, and
2 when a benchmark failed, so a caller can tell "nothing measured" from a bad result; the
markdown is written in every case it can be.

Standard library only: it runs on bare GPU machines.
"""

import argparse
import json
import os
import sys

TIME_SUFFIXES = ("/real_time", "/manual_time")


def fmt_time(value, unit):
    """Time per iteration with three significant digits, rescaled to a readable unit."""
    to_ns = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}
    ns = value * to_ns.get(unit, 1.0)
    for name, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {name}"
    return f"{ns:.3g} ns"


def fmt_rate(value, scale=1.0):
    """A rate divided by `scale`, with three significant digits; '' when absent."""
    if value is None:
        return ""
    return f"{value / scale:.3g}"


def fmt_si(value):
    """A rate with an SI prefix (items/s): 1.47 G."""
    if value is None:
        return ""
    for prefix, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {prefix}"
    return f"{value:.3g}"


def short_name(name):
    for suffix in TIME_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def section(path, data):
    """Markdown lines for one result file, and (benchmarks, failures) counts."""
    ctx = data.get("context", {})
    benches = data.get("benchmarks", [])
    exe = os.path.basename(ctx.get("executable", path))
    device = ctx.get("dsk_device", "unknown device")
    backend = ctx.get("dsk_backend", "?")
    peak = ctx.get("dsk_peak_gbps", "unknown")
    lines = [f"### {exe} ({backend}: {device})", ""]
    facts = [f"peak memory bandwidth: {peak} GB/s" if peak != "unknown" else
             "peak memory bandwidth: unknown (no %peak)"]
    if "dsk_l2_flush" in ctx:
        facts.append(f"L2 flush: {ctx['dsk_l2_flush']}")
    facts.append(f"dsk {ctx.get('dsk_version', '?')}")
    facts.append(f"host {ctx.get('host_name', '?')}, {ctx.get('num_cpus', '?')} CPUs")
    facts.append(ctx.get("date", ""))
    timing = "GPU time between CUDA events" if backend == "cuda" else "wall time"
    facts.append(f"times: {timing} per iteration")
    lines.append("; ".join(f for f in facts if f) + ".")
    lines.append("")
    if not benches:
        lines.append("_No benchmarks in this file._")
        lines.append("")
        return lines, 0, 0

    has_flops = any("flop_per_second" in b for b in benches)
    header = ["benchmark", "time", "GB/s", "items/s", "%peak"]
    if has_flops:
        header += ["TFLOP/s", "%peak flops"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    failures = 0
    for b in benches:
        name = short_name(b.get("name", "?"))
        if b.get("run_type") == "aggregate" and b.get("aggregate_name"):
            name = short_name(b.get("run_name", name)) + f" ({b['aggregate_name']})"
        if b.get("error_occurred"):
            failures += 1
            msg = str(b.get("error_message", "")).replace("|", "\\|")
            row = [f"`{name}`", f"**FAILED**: {msg}"] + [""] * (len(header) - 2)
        else:
            row = [
                f"`{name}`",
                fmt_time(b.get("real_time", 0.0), b.get("time_unit", "ns")),
                fmt_rate(b.get("bytes_per_second"), 1e9),
                fmt_si(b.get("items_per_second")),
                fmt_rate(b.get("%peak")),
            ]
            if has_flops:
                row += [fmt_rate(b.get("flop_per_second"), 1e12), fmt_rate(b.get("%peak_flops"))]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    return lines, len(benches), failures


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="+", help="Google Benchmark JSON files")
    parser.add_argument("-o", "--output", help="write the markdown here (default: stdout)")
    parser.add_argument("--title", default="dsk benchmarks", help="top heading")
    args = parser.parse_args(argv)

    lines = [f"## {args.title}", ""]
    status = 0
    for path in args.results:
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError) as e:
            lines += [f"### {os.path.basename(path)}", "", f"_Cannot read results: {e}_", ""]
            status = max(status, 1)
            continue
        body, count, failures = section(path, data)
        lines += body
        if count == 0:
            status = max(status, 1)
        if failures:
            status = max(status, 2)

    text = "\n".join(lines).rstrip() + "\n"
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
