#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""table.py [--spread] RAW.tsv TARGETS... — the Markdown results table of contrib/bench/run.

RAW.tsv has one line per measurement:
    key <TAB> label <TAB> unit <TAB> better(hi|lo) <TAB> target <TAB> run <TAB> value
value is a number, "fail" or "n/a". Rows keep the order of their first
appearance. Each cell is the median over the runs; a target with any failed
run shows "fail". Ratio columns compare mmapfs with each other target,
oriented so that > 1 means mmapfs is better (faster, or less memory) and
< 1 means it is worse: figure ratio for "hi" rows, inverse for "lo" rows.
With --spread, each cell is instead the run-to-run spread, max/min - 1 (how
noisy the figure is).
"""
import statistics
import sys


def fmt(v):
    if v is None:
        return "—"
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    return f"{v:.3g}"


def fmt_ratio(r):
    if r is None:
        return "—"
    if r >= 10:
        return f"{r:.0f}×"
    if r >= 1:
        return f"{r:.2f}×"
    return f"{r:.2g}×"


def main():
    args = sys.argv[1:]
    spread = bool(args) and args[0] == "--spread"
    if spread:
        args = args[1:]
    if len(args) < 2:
        sys.exit("usage: table.py [--spread] RAW.tsv TARGET...")
    raw, targets = args[0], args[1:]
    rows = {}
    order = []
    with open(raw) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 7:
                continue
            key, label, unit, better, target, _run, value = parts
            if key not in rows:
                rows[key] = {"label": label, "unit": unit, "better": better,
                             "vals": {}}
                order.append(key)
            rows[key]["vals"].setdefault(target, []).append(value)

    def cell(vals):
        if not vals:
            return None
        if "fail" in vals:
            return "fail"
        nums = [float(v) for v in vals if v not in ("n/a", "fail")]
        if not nums:
            return "n/a"
        return statistics.median(nums)

    if spread:
        print("| workload | " + " | ".join(targets) + " |")
        print("|---|" + "|".join(["---:"] * len(targets)) + "|")
        for key in order:
            r = rows[key]
            line = [r["label"]]
            for t in targets:
                nums = [float(v) for v in r["vals"].get(t, [])
                        if v not in ("n/a", "fail")]
                if len(nums) < 2 or min(nums) <= 0:
                    line.append("—")
                else:
                    line.append(f"{(max(nums) / min(nums) - 1) * 100:.0f}%")
            print("| " + " | ".join(line) + " |")
        return

    peers = [t for t in targets if t != "mmapfs"]
    head = ["workload", "unit"] + targets
    if "mmapfs" in targets:
        head += [f"mmapfs vs {p}" for p in peers]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---", "---"] + ["---:"] * (len(head) - 2)) + "|")
    for key in order:
        r = rows[key]
        cells = {t: cell(r["vals"].get(t)) for t in targets}
        arrow = "↑" if r["better"] == "hi" else "↓"
        line = [r["label"], f"{r['unit']} {arrow}"]
        line += [fmt(cells[t]) for t in targets]
        if "mmapfs" in targets:
            m = cells["mmapfs"]
            for p in peers:
                v = cells[p]
                ratio = None
                if isinstance(m, float) and isinstance(v, float) \
                        and m > 0 and v > 0:
                    ratio = m / v if r["better"] == "hi" else v / m
                line.append(fmt_ratio(ratio))
        print("| " + " | ".join(line) + " |")


if __name__ == "__main__":
    main()
