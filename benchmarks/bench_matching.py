"""The matcher of commands in one's own words (legion_language.matching): thresholds chosen on the labelled set's
tune split, precision and recall on both splits, and the time matching adds per command.

Usage: .venv/bin/python benchmarks/bench_matching.py [--repeats 5] [--threads 0]

Prints the chosen (threshold, margin), precision / recall / accepted / wrong per split, and per command the median
and 95th percentile wall time of CommandMatcher.plan on a paraphrase (the embedding of the command and the
nearest-exemplar search; the model is loaded once, before timing), on ``--threads`` torch threads (0: torch's default,
all cores, as `legion run` and the nodes run it; 1: one core).
"""
import argparse
import time

import numpy as np
import torch

from legion_language.embedding import TextEmbedder
from legion_language.matching import CommandMatcher, NotUnderstoodError, choose_thresholds, evaluate, load_command_set
from legion_language.tasks import load_task_library


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    embedder = TextEmbedder()
    commands = load_command_set()
    t0 = time.perf_counter()
    matcher = CommandMatcher(load_task_library(), embedder.embed)
    print(f"matcher built in {time.perf_counter() - t0:.2f} s: {len(matcher.exemplars)} exemplars "
          f"({sum(m is None for _, m in matcher.exemplars)} refusals), {len(commands)} labelled commands")
    tune = [c for c in commands if c["split"] == "tune"]
    test = [c for c in commands if c["split"] == "test"]
    chosen = choose_thresholds(matcher, tune)
    print(f"chosen on tune (leave-one-out, precision >= 0.99, highest recall): threshold {chosen['threshold']:.2f}, "
          f"margin {chosen['margin']:.2f}; module defaults {matcher.threshold:.2f}, {matcher.margin:.2f}")
    for name, part in (("tune", tune), ("test", test)):
        r = evaluate(matcher, part)
        n_pos = sum(bool(c["meaning"]) for c in part)
        print(f"{name:5s} {len(part):3d} commands ({n_pos} with a meaning, {len(part) - n_pos} to refuse): "
              f"precision {r['precision']:.3f}, recall {r['recall']:.3f}, accepted {r['accepted']}, wrong {r['wrong']}")
    times = []
    for _ in range(args.repeats):
        for c in test:
            t0 = time.perf_counter()
            try:
                matcher.plan(c["text"])
            except NotUnderstoodError:
                pass
            times.append(time.perf_counter() - t0)
    ms = np.asarray(times) * 1e3
    print(f"matching per command ({len(ms)} calls, {torch.get_num_threads()} torch threads): median {np.median(ms):.1f} ms, "
          f"p95 {np.percentile(ms, 95):.1f} ms, max {ms.max():.1f} ms, {int((ms > 20).sum())} calls above 20 ms")


if __name__ == "__main__":
    main()
