"""Speed-up table and scaling plot from a pytest-benchmark JSON (``make bench`` writes one).

python -m benchmarks.report benchmarks/results/latest.json
"""

import json
import platform
import sys
from pathlib import Path

import numpy as np


def load(paths):
    rows = {}
    data = {}
    benches = []
    for path in paths:
        data = json.loads(Path(path).read_text())
        benches += data["benchmarks"]
    for b in benches:
        info = b["extra_info"]
        rows[(info["calculator"], b["group"])] = {
            "median_s": b["stats"]["median"],
            "n_atoms": info["n_atoms"],
            "call_peak_extra_mb": info.get("call_peak_extra_mb"),
        }
    return data, rows


def speedups(rows):
    out = {}
    groups = sorted({g for _, g in rows})
    students = sorted({c for c, _ in rows if c.startswith("student-")})
    teachers = sorted({c for c, _ in rows if not c.startswith(("student-", "floor", "tiny-"))})
    for g in groups:
        for s in students:
            if (s, g) not in rows:
                continue
            entry = {"student_ms": rows[(s, g)]["median_s"] * 1e3}
            for t in teachers:
                if (t, g) in rows:
                    entry[f"vs {t}"] = rows[(t, g)]["median_s"] / rows[(s, g)]["median_s"]
            for floor in ("floor", "floor-graph"):
                if (floor, g) in rows:
                    entry[f"x {floor}"] = rows[(s, g)]["median_s"] / rows[(floor, g)]["median_s"]
            out.setdefault(g, {})[s] = entry
    return out


def scaling_exponents(rows, min_atoms=300):
    """Slope of log(time) vs log(atoms) over the water boxes with >= ``min_atoms`` (1 = linear)."""
    out = {}
    for calc in sorted({c for c, _ in rows}):
        pts = sorted(
            (v["n_atoms"], v["median_s"])
            for (c, g), v in rows.items()
            if c == calc and g.startswith("water-box") and v["n_atoms"] >= min_atoms
        )
        if len(pts) >= 2:
            x, y = np.log(np.array(pts)).T
            out[calc] = {
                "exponent": float(np.polyfit(x, y, 1)[0]),
                "atoms": [int(round(np.exp(a))) for a in x],
            }
    return out


def _base(calc, suffixes):
    for suf in suffixes:
        if calc.endswith(suf):
            return calc[: -len(suf)]
    return calc


def plot(rows, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.subplots()
    calcs = sorted({c for c, _ in rows if not c.startswith("tiny-")})
    suffixes = {"-compiled": "--", "-reused-memory": "-."}
    bases = sorted({_base(c, suffixes) for c in calcs})
    colors = {b: f"C{k % 10}" for k, b in enumerate(bases)}
    for calc in calcs:
        pts = sorted(
            (v["n_atoms"], v["median_s"])
            for (c, g), v in rows.items()
            if c == calc and g.startswith("water-box")
        )
        if pts:
            x, y = np.array(pts).T
            style = next((ls for suf, ls in suffixes.items() if calc.endswith(suf)), "-")
            style = ":" if calc.startswith("floor") else style
            ax.loglog(
                x,
                y * 1e3,
                marker="o",
                ms=3,
                ls=style,
                color=colors[_base(calc, suffixes)],
                label=calc,
            )
    ax.set_xlabel("atoms (periodic water box)")
    ax.set_ylabel("energy+forces call (ms)")
    ax.legend(fontsize=6, ncol=2)
    ax.set_title(
        "energy+forces per call, 1 CPU thread (-- compile=True, -. reuse_freed_memory)", fontsize=8
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("benchmarks/results").glob("run-*.json"))
    src = paths[0]
    data, rows = load(paths)
    table = speedups(rows)
    out = {
        "source": src.name,
        "machine": data.get("machine_info", {})
        .get("cpu", {})
        .get("brand_raw", platform.processor()),
        "speedups": table,
        "scaling_exponent_water_boxes_300_plus": scaling_exponents(rows),
        "times_ms": {f"{c} | {g}": v["median_s"] * 1e3 for (c, g), v in rows.items()},
        "call_peak_extra_mb": {
            f"{c} | {g}": v["call_peak_extra_mb"]
            for (c, g), v in rows.items()
            if v["call_peak_extra_mb"] is not None
        },
    }
    res = src.parent
    (res / "speedups.json").write_text(json.dumps(out, indent=2))
    plot(rows, res / "scaling.png")
    for g, by in table.items():
        for s, e in by.items():
            print(g, s, {k: round(v, 2) for k, v in e.items()})
    for c, e in out["scaling_exponent_water_boxes_300_plus"].items():
        print(f"scaling exponent {c}: {e['exponent']:.2f} over {e['atoms']} atoms")
    print(f"wrote {res / 'speedups.json'} and {res / 'scaling.png'}")


if __name__ == "__main__":
    main()
