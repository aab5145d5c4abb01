#!/usr/bin/env python
"""Latency of the language front end: speech → text (per shipped command WAV) and text → embedding.

Usage::

    python benchmarks/bench_language.py [--repeats 20] [--threads 1]

Prints, per WAV in ``legion_language/data/commands/``, the median wall-clock time of
``PocketSphinxRecognizer.transcribe`` with the phone-loop confidence pass (the default) and without
it (grammar only), and the median and p99 time of ``TextEmbedder.embed`` for one sentence
(all-MiniLM-L6-v2 on CPU), over every phrasing of the task library.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

COMMANDS_DIR = Path(__file__).resolve().parents[1] / "legion_language" / "data" / "commands"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20, help="timed runs per item (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default: %(default)s)")
    args = ap.parse_args()

    import torch

    from legion_language.embedding import TextEmbedder
    from legion_language.speech import PocketSphinxRecognizer, read_wav
    from legion_language.tasks import load_task_library

    torch.set_num_threads(args.threads)
    phrases = load_task_library().phrasings()
    full = PocketSphinxRecognizer(phrases)
    grammar_only = PocketSphinxRecognizer(phrases, min_confidence=None)

    print(f"speech: pocketsphinx 5 en-us, JSGF grammar of {len(phrases)} phrasings, {args.repeats} runs per WAV")
    print(f"  {'wav':24s} {'audio s':>8s} {'text':24s} {'median ms':>10s} {'grammar-only ms':>16s}")
    for wav in sorted(COMMANDS_DIR.glob("*.wav")):
        pcm = read_wav(wav)
        text = full.transcribe(pcm).text
        t_full = [full.transcribe(pcm).seconds for _ in range(args.repeats)]
        t_gram = [grammar_only.transcribe(pcm).seconds for _ in range(args.repeats)]
        print(f"  {wav.name:24s} {len(pcm) / 16000:8.2f} {text!r:24s} "
              f"{1e3 * np.median(t_full):10.1f} {1e3 * np.median(t_gram):16.1f}")

    embedder = TextEmbedder()
    embedder.embed(phrases)  # warm-up
    times = []
    for _ in range(args.repeats):
        for p in phrases:
            t0 = time.perf_counter()
            embedder.embed(p)
            times.append(time.perf_counter() - t0)
    ms = 1e3 * np.asarray(times)
    print(f"embedding: {embedder.name} ({embedder.dim}-d), torch threads {args.threads}, "
          f"{len(times)} single-sentence calls")
    print(f"  median {np.median(ms):.1f} ms, p99 {np.percentile(ms, 99):.1f} ms per sentence")


if __name__ == "__main__":
    main()
