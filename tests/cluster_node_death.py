"""Child process of test_cluster.test_merge_survives_a_worker_node_dying: its own cluster and workspace,
then the scenario. Prints NODE-DEATH-OK or NODE-DEATH-FAILED; a Ray driver abort prints neither."""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import test_cluster as T  # noqa: E402


def main(root: str) -> int:
    c, nodes = T.start_cluster()
    try:
        merge_ws = T.build_merge_ws(Path(root) / "ws")
        try:
            T.node_death_scenario((c, nodes), merge_ws)
        except AssertionError:
            print("NODE-DEATH-FAILED", flush=True)
            traceback.print_exc(file=sys.stdout)
            return 2
        print("NODE-DEATH-OK", flush=True)
        return 0
    finally:
        T.stop_cluster(c)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
