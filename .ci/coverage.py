#!/usr/bin/env python3
"""Per-crate line coverage from `cargo llvm-cov report --json --summary-only`.

Usage: coverage.py REPORT.json MIN_PERCENT ENFORCED... [-- REPORTED...]

Each name is a directory under crates/; a crate's figure counts the lines of
its src/ only (its tests are not what is being measured). ENFORCED crates
below MIN_PERCENT fail the run; REPORTED ones are printed for information.
"""

import json
import sys


def main() -> int:
    report, minimum, *names = sys.argv[1:]
    minimum = float(minimum)
    enforced, reported = names, []
    if "--" in names:
        at = names.index("--")
        enforced, reported = names[:at], names[at + 1 :]
    files = json.load(open(report))["data"][0]["files"]
    failed = []
    print(f"{'crate':<10} {'lines':>7} {'covered':>8} {'line %':>7}")
    for name in enforced + reported:
        marker = f"/crates/{name}/src/"
        count = covered = 0
        for f in files:
            if marker in f["filename"]:
                count += f["summary"]["lines"]["count"]
                covered += f["summary"]["lines"]["covered"]
        if count == 0:
            print(f"FAIL: no coverage data for crates/{name}/src", file=sys.stderr)
            return 1
        pct = 100.0 * covered / count
        gate = ""
        if name in enforced:
            gate = f"(min {minimum:g} %)"
            if pct < minimum:
                failed.append(name)
                gate += " BELOW"
        else:
            gate = "(reported only)"
        print(f"{name:<10} {count:>7} {covered:>8} {pct:>6.1f}% {gate}")
    if failed:
        print(
            f"FAIL: line coverage below {minimum:g} % in: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
