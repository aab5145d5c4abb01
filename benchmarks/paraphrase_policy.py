"""What the frozen policy does with a paraphrase's own embedding (issue 19): per task, success and DPMM component
when the policy is conditioned on the embedding of a paraphrase instead of the library phrasing's.

The paper claims the language embedding carries the task's meaning. Here every subtask of the checkpoint runs
``--episodes`` randomised episodes through the whole deployed chain (KUKA plant, the simulator's object points,
placements seeded from ``--seed``, the same placements for every text) conditioned on: the library phrasing the
stack runs (its first), and each paraphrase of the labelled command set's test split (``--paraphrases`` per task).
A paraphrase's "component" column is the share of its episodes whose most frequent DPMM component is the library
phrasing's most frequent one.

Usage:
    .venv/bin/python benchmarks/paraphrase_policy.py [--checkpoint models/stream-efficient/legion] [--episodes 10] \\
        [--paraphrases 3] [--json benchmarks/results/paraphrase_policy.json]
"""
import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from legion_language.embedding import TextEmbedder
from legion_language.matching import load_command_set
from legion_language.tasks import library_from_dict
from legion_runtime.main_job import kuka_episodes, load_policy


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", type=Path, default=Path("models/stream-efficient/legion"))
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--paraphrases", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    policy = load_policy(args.checkpoint)
    library = library_from_dict(policy.task_library)
    embedder = TextEmbedder()
    policy.check_embedder(embedder.name, embedder.dim)
    commands = [c for c in load_command_set() if c["split"] == "test" and len(c["meaning"]) == 1]
    rows, t0 = [], time.perf_counter()
    print(f"{'task':22s} {'text':40s} {'cos':>5s} {'success':>8s} {'component':>10s}")
    for subtask in library.subtasks.values():
        texts = [subtask.description] + [c["text"] for c in commands if c["meaning"] == [subtask.name]][:args.paraphrases]
        vectors = embedder.embed(texts)
        reference = None
        for k, (text, v) in enumerate(zip(texts, vectors)):
            outcomes = kuka_episodes(policy, subtask, v, args.episodes, args.seed)
            modes = [Counter(o.components).most_common(1)[0][0] if o.components else -1 for o in outcomes]
            success = float(np.mean([o.success for o in outcomes]))
            if k == 0:
                reference = Counter(modes).most_common(1)[0][0]
            same = float(np.mean([m == reference for m in modes]))
            cos = float(np.dot(v, vectors[0]))
            rows.append({"task": subtask.name, "text": text, "library_phrasing": k == 0, "cosine_to_library": cos,
                         "success": success, "episodes": args.episodes, "component_modes": modes,
                         "same_component_as_library": same})
            print(f"{subtask.name:22s} {text[:40]:40s} {cos:5.2f} {success:8.2f} "
                  f"{'(' + str(reference) + ')' if k == 0 else f'{same:.2f}':>10s}", flush=True)
    para = [r for r in rows if not r["library_phrasing"]]
    lib = [r for r in rows if r["library_phrasing"]]
    print(f"library phrasings: mean success {np.mean([r['success'] for r in lib]):.3f}; paraphrases: mean success "
          f"{np.mean([r['success'] for r in para]):.3f}, same component as the library phrasing "
          f"{np.mean([r['same_component_as_library'] for r in para]):.3f} ({len(para)} paraphrases, "
          f"{time.perf_counter() - t0:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "seed": args.seed, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
