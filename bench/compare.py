"""Before/after table of two runs of the same benchmark (engine_loop.py or client.py).

    python bench/compare.py BEFORE.json AFTER.json [--out results/NAME.json]

Each benchmark reports ratios between contenders measured side by side in one process run; this
puts the ratios of two such runs (e.g. of two commits) next to each other with their per-repeat
spread, so a change is judged against the run-to-run noise rather than against one number.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from common import write_result


def ratios(result: dict[str, Any]) -> dict[str, dict[str, float]]:
    """name -> {median, min, max} of every ratio in a result file (per-repeat values)."""
    out: dict[str, dict[str, float]] = {}

    def add(name: str, entry: dict[str, Any]) -> None:
        values = entry["per_repeat"]
        out[name] = {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
        }

    for scenario in result.get("scenarios", []):  # engine_loop.json
        for key, entry in scenario["ratios_items_per_s"].items():
            add(f"{scenario['name']} {key}", entry)
    for key in ("speedup_client16_over_client1", "ratio_best_client_over_offline"):
        if isinstance(result.get(key), dict):  # client.json
            add(key, result[key])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", type=Path)
    p.add_argument("after", type=Path)
    p.add_argument("--out", default=None)
    p.add_argument("--note", default="")
    args = p.parse_args()
    before = json.loads(args.before.read_text())
    after = json.loads(args.after.read_text())
    a, b = ratios(before), ratios(after)
    rows = []
    for name in a:
        if name not in b:
            continue
        spread_overlaps = b[name]["max"] >= a[name]["min"] and a[name]["max"] >= b[name]["min"]
        rows.append(
            {"ratio": name, "before": a[name], "after": b[name], "overlap": spread_overlaps}
        )
        print(
            f"{name:40s} before {a[name]['median']:.3f} [{a[name]['min']:.3f}-{a[name]['max']:.3f}]"
            f"  after {b[name]['median']:.3f} [{b[name]['min']:.3f}-{b[name]['max']:.3f}]"
            f"  {'within spread' if spread_overlaps else 'OUTSIDE spread'}"
        )
    if args.out:
        path = write_result(
            "compare",
            {
                "before": {"file": str(args.before), "created": before.get("created")},
                "after": {"file": str(args.after), "created": after.get("created")},
                "note": args.note,
                "ratios": rows,
            },
            args.out,
        )
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
