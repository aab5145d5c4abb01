"""Paraphrases spoken by espeak-ng voices used nowhere else in the project, through `legion run --wav` (issue 19).

Two paraphrases per subtask from the labelled command set's test split (never seen by the matcher's tuning), each
synthesised by one of five espeak-ng voices (British, Scottish, RP, Caribbean and New York English: the tests and
the shipped WAVs use en-us only), run through `legion run --wav` twice: with the default closed grammar and with
`--free-wording` (free-form decoding, then the matcher). Each run is classified from what `legion run` printed:
*right* (it ran the paraphrase's skill), *refused* (no command recognised, or not understood: nothing moved) or
*wrong* (it ran another skill).

Usage: .venv/bin/python benchmarks/spoken_paraphrases.py [--per-task 2] [--json benchmarks/results/spoken_paraphrases.json]
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
from pathlib import Path

from legion_language.matching import load_command_set

VOICES = ["en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc"]
ROOT = Path(__file__).resolve().parents[1]


def speak(text: str, voice: str, path: Path) -> None:
    """16 kHz mono 16-bit WAV of ``text`` by espeak-ng ``voice`` at 150 words/min (sox resamples)."""
    subprocess.run(f"espeak-ng -v {voice} -s 150 --stdout {json.dumps(text)} | sox -t wav - -r 16000 -c 1 -b 16 "
                   f"{path}", shell=True, check=True, capture_output=True)


def run(wav: Path, free: bool) -> tuple[str, list[str], str]:
    """(what `legion run` heard, the skills it ran, its last line)."""
    args = [str(ROOT / ".venv/bin/legion"), "run", "--wav", str(wav), "--perception", "simulator", "--no-video",
            "--out", tempfile.gettempdir()] + (["--free-wording"] if free else [])
    proc = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "MUJOCO_GL": "egl"})
    out = proc.stdout + proc.stderr
    heard = re.search(r"heard '([^']*)'", out)
    ran = re.findall(r"subtask \d+/\d+ '([^']+)'", out)
    return heard.group(1) if heard else "", ran, out.strip().splitlines()[-1] if out.strip() else ""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-task", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    chosen, per = [], {}
    for c in load_command_set():
        if c["split"] == "test" and len(c["meaning"]) == 1 and c["meaning"][0] not in ("clean the table",
                                                                                         "make the coffee"):
            if per.get(c["meaning"][0], 0) < args.per_task:
                per[c["meaning"][0]] = per.get(c["meaning"][0], 0) + 1
                chosen.append(c)
    rows, counts = [], {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, c in enumerate(chosen):
            voice = VOICES[i % len(VOICES)]
            wav = Path(tmp) / f"p{i}.wav"
            speak(c["text"], voice, wav)
            for mode in ("grammar", "free"):
                heard, ran, last = run(wav, mode == "free")
                verdict = "refused" if not ran else ("right" if ran == c["meaning"] else "wrong")
                counts[(mode, verdict)] = counts.get((mode, verdict), 0) + 1
                rows.append({"text": c["text"], "meaning": c["meaning"][0], "voice": voice, "mode": mode,
                             "heard": heard, "ran": ran, "verdict": verdict, "last_line": last})
                print(f"{mode:7s} {voice:15s} {c['text'][:38]:38s} heard {heard[:38]!r:40s} -> {verdict}"
                      f"{'' if verdict != 'wrong' else ' ' + str(ran)}", flush=True)
    for mode in ("grammar", "free"):
        print(f"{mode}: right {counts.get((mode, 'right'), 0)}, refused {counts.get((mode, 'refused'), 0)}, "
              f"wrong {counts.get((mode, 'wrong'), 0)} of {len(chosen)}")
    if args.json:
        args.json.write_text(json.dumps({"voices": VOICES, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
