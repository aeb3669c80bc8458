"""A right answer must never lose points by the luck of the draw: run every property of a
grader on the master's answers over many fresh seeds, in one sandboxed worker, and list
each property that failed with how often and its last message.

    .venv/bin/python -m tests.grader_draws 02_moco_queue --seeds 1000

(Not part of the test run: 1000 seeds take 2 to 26 minutes a grader on 2 cores. It found
the two draws that failed a master once in a few hundred: 02's logits of one query and
one key too close to tell from constant, 05's finite difference across a ReLU kink.)
"""
from __future__ import annotations

import argparse
import collections
import time

from autograder import sandbox, scoring, worker_client
from tests.helpers import master_and_release


def audit(assignment: str, seeds: int, echo=print) -> dict[tuple[str, str], tuple[int, str]]:
    """(grade_id, property) -> (failures, last message), for the properties that failed."""
    master, release = master_and_release(assignment)
    grader = scoring.load_grader(assignment)
    sources = scoring.scored_cells(master, release)
    failures: dict = collections.defaultdict(lambda: [0, ""])
    worker = None
    try:
        for index, (grade_id, properties) in enumerate(grader.PROPERTIES.items()):
            for j, prop in enumerate(properties):
                start = time.perf_counter()
                for seed in range(seeds):
                    if worker is None or worker.dead:
                        if worker is not None:
                            worker.close()
                        worker = worker_client.Worker(sandbox.Limits(), 120)
                        worker.load(sources)
                    result = scoring.run_property(prop, grade_id, worker,
                                                  1_000_003 * seed + 7919 * index + j)
                    if result.earned != result.points:
                        failures[(grade_id, prop.name)][0] += 1
                        failures[(grade_id, prop.name)][1] = result.message
                echo(f"{grade_id:24s} {prop.name[:56]:56s} "
                     f"{failures[(grade_id, prop.name)][0]:4d} failed "
                     f"({time.perf_counter() - start:.0f} s)")
    finally:
        if worker is not None:
            worker.close()
    return {key: (n, message) for key, (n, message) in failures.items() if n}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("assignment")
    parser.add_argument("--seeds", type=int, default=200)
    args = parser.parse_args(argv)
    failed = audit(args.assignment, args.seeds)
    for (grade_id, name), (n, message) in failed.items():
        print(f"FAILED {n}/{args.seeds}: {grade_id}: {name}: {message}")
    print("no draw failed the master" if not failed else f"{len(failed)} properties failed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
