"""Render the fault suite's results (the FAULT-SUITE JSON lines of tests/e2e/fault_suite.rs, one per
scenario) as the markdown table of tests/FAULTS.md.

    python3 testbed/faultproxy/table.py RESULTS.jsonl
"""

import json
import sys


def main() -> None:
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    rows.sort(key=lambda r: r["scenario"])
    print("| scenario | runs | faults injected | duplicates | orphans | missing IDs | time to converge (s) | what |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['scenario']} | {r['runs']} | {r['faults_injected']} | {r['duplicates']} | {r['orphans']} "
            f"| {r['missing']} | {r['converge_s']} | {r['note']} |"
        )


if __name__ == "__main__":
    main()
