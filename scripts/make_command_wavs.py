#!/usr/bin/env python
"""Synthesise the shipped spoken-command WAVs (16 kHz, mono, int16) with espeak-ng and sox.

One file per canonical command of the task library: every subtask's ``description`` and every
long-horizon phrasing, named after the phrase (``reach the goal`` → ``reach_the_goal.wav``).
They are the real audio the speech tests and benchmarks decode, and a demo input for the runner.

Usage::

    python scripts/make_command_wavs.py                     # (re)generate legion_language/data/commands/
    python scripts/make_command_wavs.py --out /tmp/x --phrase "open the window"   # any sentence

Needs the Debian packages ``espeak-ng`` and ``sox`` on PATH. Output is deterministic for a given
espeak-ng version, voice and speed (sox's dither, a realistic noise floor, runs with a fixed seed: -R).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SAMPLE_RATE_HZ = 16000
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "legion_language" / "data" / "commands"
PAD_S = 0.3  # silence before and after the phrase, as a push-to-talk clip would have


def canonical_phrases(library_path: str | None = None) -> list[str]:
    """The phrases to ship: each subtask's description plus every long-horizon phrasing, sorted."""
    from legion_language.tasks import load_task_library

    lib = load_task_library(library_path)
    phrases = {st.description for st in lib.subtasks.values()}
    for task in lib.long_horizon.values():
        phrases.update(task.phrasings)
    return sorted(phrases)


def wav_name(phrase: str) -> str:
    """File name for a phrase: ``"reach the goal"`` → ``"reach_the_goal.wav"``."""
    return "_".join(phrase.split()).replace("'", "") + ".wav"


def synthesise(text: str, path: Path, voice: str = "en-us", speed_wpm: int = 150) -> Path:
    """Speak ``text`` with espeak-ng and write it as a 16 kHz mono int16 WAV at ``path``.

    Raises:
        RuntimeError: espeak-ng or sox is missing, or either command fails.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not found on PATH: install it (Debian: apt-get install espeak-ng sox)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"  # espeak-ng writes 22.05 kHz mono int16
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed_wpm), "-w", str(raw), text],
                       check=True, capture_output=True)
        subprocess.run(["sox", "-R", str(raw), "-r", str(SAMPLE_RATE_HZ), "-c", "1", "-b", "16", "-e", "signed-integer",
                        str(path), "pad", str(PAD_S), str(PAD_S)], check=True, capture_output=True)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)")
    ap.add_argument("--library", default=None, help="task library YAML (default: the shipped one)")
    ap.add_argument("--phrase", action="append", help="synthesise this sentence instead of the library (repeatable)")
    ap.add_argument("--voice", default="en-us", help="espeak-ng voice (default: %(default)s)")
    ap.add_argument("--speed", type=int, default=150, help="words per minute (default: %(default)s)")
    args = ap.parse_args(argv)

    phrases = args.phrase or canonical_phrases(args.library)
    for phrase in phrases:
        path = synthesise(phrase, args.out / wav_name(phrase), args.voice, args.speed)
        print(f"{path}  ({path.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
