"""Run the configurations of tests/test_claims.py for several seeds and print each assertion's
slack (positive: the claim holds) and the CPU time per claim: the margins written in that file.

    python scripts/claims_margins.py [--seeds 0 1 2] [--claims mi pc wsol] [--out DIR]

Manual mutation check of claim 2: ``--claims pc --seeds 0 --mutate`` trains the "pc_softmax" run
with CE; its slack must come out negative (margin 0 < the test's PC_MIN_MARGIN), i.e. the claim
test would fail, and the script exits 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import test_claims as C  # noqa: E402

CLAIMS = {
    "mi": (C.mi_claim_runs, C.mi_claim_margins),
    "pc": (C.pc_claim_runs, C.pc_claim_margins),
    "wsol": (C.wsol_claim_runs, C.wsol_claim_margins),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--claims", nargs="+", choices=list(CLAIMS), default=list(CLAIMS))
    parser.add_argument("--out", type=Path, default=None, help="run folders (default: a temporary one)")
    parser.add_argument("--mutate", action="store_true", help="claim 2 only: replace PC-softmax by CE (expect failure)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    out = args.out or Path(tempfile.mkdtemp(prefix="claims_"))
    worst: dict[str, float] = {}
    for name in args.claims:
        runs, margins = CLAIMS[name]
        for seed in args.seeds:
            wall, cpu = time.perf_counter(), time.process_time()
            if args.mutate and name == "pc":
                m = margins(runs(out / name / f"seed{seed}_mutated", seed, mutate=True))
            else:
                m = margins(runs(out / name / f"seed{seed}", seed))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            for what, slack in m.items():
                worst[what] = min(worst.get(what, slack), slack)
                print(f"{name} seed {seed}: {what} = {slack:+.4f}", flush=True)
            print(f"{name} seed {seed}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    print("\nsmallest slack over seeds", args.seeds)
    for what, slack in worst.items():
        print(f"  {what}: {slack:+.4f}")
    return 0 if all(v > 0 for v in worst.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
