"""Speed-ups of the water students over their teachers from one benchmark run.

python -m benchmarks.water_report benchmarks/results/run-test_water.json
"""

import json
import sys
from pathlib import Path


def main(path: str, out: str = "benchmarks/results/water_speedups.json") -> dict:
    """Times per call and teacher / student ratios per system size; written to ``out``."""
    data = json.loads(Path(path).read_text())
    times: dict[int, dict[str, float]] = {}
    for b in data["benchmarks"]:
        info = b["extra_info"]
        times.setdefault(info["n_atoms"], {})[info["calculator"]] = b["stats"]["median"]
    result = {"machine": data.get("machine_info", {}).get("cpu", {}).get("brand_raw"), "sizes": {}}
    for n, row in sorted(times.items()):
        entry = {"ms": {k: round(v * 1e3, 2) for k, v in row.items()}}
        for student in (k for k in row if k.startswith("water-")):
            entry[f"{student} speed-up"] = {
                t: round(v / row[student], 1) for t, v in row.items() if not t.startswith("water-")
            }
        result["sizes"][str(n)] = entry
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(*sys.argv[1:])
