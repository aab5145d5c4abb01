"""Spoken command → text: constrained to the task library's commands (the default), or free-form for the matcher.

Two backends behind one small interface (``transcribe(pcm) -> Recognition``):

* :class:`PocketSphinxRecognizer` (default, embedded): pocketsphinx 5 with the en-us acoustic model
  and CMUdict shipped in its wheel, decoding with a JSGF grammar of the command phrasings. A grammar
  alone maps *any* speech that reaches its final state to a command, so each hypothesis is also
  scored against an unconstrained phone loop (a second, ``allphone`` pass over the same audio): the
  confidence is the worst per-word acoustic log-likelihood ratio, grammar word vs phone loop, in
  nats per 10 ms frame (the classic phone-loop-normalised word confidence). Below
  ``min_confidence`` the result is rejected (``text == ''``).
* :class:`VoskRecognizer` (the robot's backend): Vosk/Kaldi with a model folder, optionally with a
  JSON grammar of the phrasings plus ``[unk]``, streaming in chunks as the ROS node receives audio.

Free-form (``make_recognizer(..., free=True)``, for commands in one's own words): pocketsphinx with a bigram model
of what the stack expects to hear (:func:`command_sentences`, :func:`domain_arpa`), Vosk with its model's own; the
text then goes to :mod:`legion_language.matching`, which understands or refuses it.

Audio everywhere: 16 kHz, mono, signed 16-bit PCM as a 1-D ``np.int16`` array (:func:`read_wav`).
Recognised text is normalised (lower case, single spaces); the caller maps it to subtasks with
``TaskLibrary.plan``, which raises ``UnknownCommandError`` for anything else.
"""
from __future__ import annotations

import json
import math
import time
import warnings
import wave
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from legion_language.tasks import JOINERS, TaskLibrary, UnknownCommandError, normalise

SAMPLE_RATE_HZ = 16000
# Rejection threshold for PocketSphinxRecognizer, nats per frame, chosen on espeak-ng audio (4 English
# voices x 2 speeds): keeps 53 of the 55 correctly decoded in-library clips; rejects all noise/silence and
# every out-of-library sentence except some one-word substitutions ("close the door", "reach the drawer").
DEFAULT_MIN_CONFIDENCE = -4.6
_SENSCR_SHIFT = 10  # pocketsphinx reports allphone segment scores right-shifted by 10 bits (SENSCR_SHIFT)


class SpeechError(RuntimeError):
    """Audio that cannot be used (missing, not a WAV, wrong format) or a recogniser that cannot start."""


@dataclass(frozen=True)
class Recognition:
    """One recognised utterance.

    Attributes:
        text: normalised words; ``''`` when nothing (or nothing confident) was recognised.
        confidence: backend-specific, higher is better, ``None`` when nothing was decoded.
            pocketsphinx: min over words of the per-frame log-likelihood ratio against a phone loop
            (nats/frame, typically -15..0). vosk: min over words of Kaldi's word posterior (0..1).
        seconds: wall-clock decoding time (s).
    """

    text: str
    confidence: float | None
    seconds: float


def _sox_hint(path: Path | str) -> str:
    return f"convert it with: sox '{path}' -r {SAMPLE_RATE_HZ} -c 1 -b 16 -e signed-integer out.wav"


def read_wav(path: str | Path) -> np.ndarray:
    """Read a 16 kHz mono 16-bit PCM WAV file.

    Returns:
        int16 array (N,) of samples.

    Raises:
        SpeechError: the file is missing, is not a PCM WAV file, or has another sample rate,
            channel count or sample width (the message gives the sox command that converts it).
    """
    path = Path(path)
    if not path.is_file():
        raise SpeechError(f"audio file {path} does not exist")
    try:
        with wave.open(str(path), "rb") as w:
            rate, channels, width, n = w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()
            frames = w.readframes(n)
    except (wave.Error, EOFError) as exc:
        raise SpeechError(f"{path} is not a readable PCM WAV file ({exc}); {_sox_hint(path)}") from exc
    problems = [f"{what} is {got}, need {need}" for what, got, need in
                (("sample rate", f"{rate} Hz", f"{SAMPLE_RATE_HZ} Hz"), ("channel count", channels, 1),
                 ("sample width", f"{8 * width} bit", "16 bit")) if str(got) != str(need)]
    if problems:
        raise SpeechError(f"{path}: {'; '.join(problems)}; {_sox_hint(path)}")
    return np.frombuffer(frames, dtype="<i2").astype(np.int16)


def _check_pcm(pcm: np.ndarray) -> np.ndarray:
    """Validate audio for the recognisers: 1-D int16 (16 kHz mono is the caller's promise)."""
    if not isinstance(pcm, np.ndarray):
        raise SpeechError(f"audio must be a numpy int16 array, got {type(pcm).__name__}; use read_wav(path)")
    if pcm.ndim != 1:
        raise SpeechError(f"audio must be mono, shape (N,), got shape {pcm.shape}; mix channels first, "
                          "e.g. pcm.mean(axis=1).astype(np.int16)")
    if pcm.dtype != np.int16:
        raise SpeechError(f"audio must be int16 PCM, got dtype {pcm.dtype}; for floats in [-1, 1] use "
                          "(np.clip(x, -1, 1) * 32767).astype(np.int16)")
    return np.ascontiguousarray(pcm, dtype="<i2")


def _alternatives(phrases: Sequence[str]) -> str:
    return " | ".join(f"( {p} )" for p in phrases)


def jsgf_grammar(phrases: Sequence[str]) -> str:
    """JSGF grammar text with one public rule ``<command>`` that accepts exactly ``phrases``."""
    return f"#JSGF V1.0;\ngrammar commands;\npublic <command> = {_alternatives(phrases)};\n"


def library_jsgf(library: TaskLibrary) -> str:
    """The pocketsphinx JSGF grammar of a task library: public rule ``<command>`` accepts every phrasing and
    compound commands ``<subtask> ( ( and then | then | and ) <subtask> )*`` (see ``TaskLibrary.plan``)."""
    joiners = " | ".join(" ".join(j) for j in JOINERS)
    long_horizon = sorted(set(library.phrasings()) - set(library.subtask_phrasings()))
    rules = [f"<subtask> = {_alternatives(library.subtask_phrasings())};"]
    command = f"<subtask> ( ( {joiners} ) <subtask> )*"
    if long_horizon:
        rules.append(f"<long_horizon> = {_alternatives(long_horizon)};")
        command = f"<long_horizon> | {command}"
    return "#JSGF V1.0;\ngrammar commands;\n" + "\n".join(rules) + f"\npublic <command> = {command};\n"


def domain_arpa(sentences: Sequence[str], discount: float = 0.5) -> str:
    """A bigram language model of ``sentences`` in ARPA text form (log10), for free-form decoding of commands.

    Absolute discounting (``discount`` per seen bigram) with back-off to the unigram distribution (Ney, Essen &
    Kneser 1994); sentences begin with ``<s>`` and end with ``</s>``. Words are the sentences' (normalised) words.

    Raises:
        SpeechError: no sentences, or ``discount`` outside (0, 1).
    """
    if not sentences or not 0 < discount < 1:
        raise SpeechError(f"need sentences and a discount in (0, 1), got {len(sentences)} sentences and {discount}")
    uni, bi = Counter(), Counter()
    for sentence in sentences:
        tokens = ["<s>", *normalise(sentence).split(), "</s>"]
        uni.update(tokens[1:])
        bi.update(zip(tokens, tokens[1:]))
    history, followers = Counter(), {}
    for (h, w), c in bi.items():
        history[h] += c
        followers.setdefault(h, set()).add(w)
    total = sum(uni.values())
    p1 = {w: c / total for w, c in uni.items()}
    unigrams = []
    for w in sorted(set(uni) | {"<s>"}):
        lp = "-99" if w == "<s>" else f"{math.log10(p1[w]):.6f}"
        if w in history:  # back-off weight: the discounted mass over the unigram mass of unseen followers
            mass = discount * len(followers[w]) / history[w]
            unigrams.append(f"{lp} {w} {math.log10(mass / (1 - sum(p1[x] for x in followers[w]))):.6f}")
        else:
            unigrams.append(f"{lp} {w}")
    bigrams = [f"{math.log10((c - discount) / history[h]):.6f} {h} {w}" for (h, w), c in sorted(bi.items())]
    return "\n".join(["\\data\\", f"ngram 1={len(unigrams)}", f"ngram 2={len(bigrams)}", "", "\\1-grams:", *unigrams,
                      "", "\\2-grams:", *bigrams, "", "\\end\\", ""])


def command_sentences(library: TaskLibrary) -> list[str]:
    """What free-form decoding expects to hear: the library's phrasings, each subtask phrasing joined to the next by
    every joiner (compound commands), and the labelled command set's tune split (paraphrases and near-misses, so that
    a near-miss is heard as said and then refused by the matcher, not heard as the command it resembles)."""
    from legion_language.matching import load_command_set

    subtasks = library.subtask_phrasings()  # each joined to the next: every joiner's bigrams, not every pair's
    compounds = _compounds(zip(subtasks, subtasks[1:] + subtasks[:1]))
    return library.phrasings() + compounds + [c["text"] for c in load_command_set() if c["split"] == "tune"]


def _compounds(pairs) -> list[str]:
    """``a <joiner> b`` for every (a, b) of ``pairs`` and every joiner of the library (:data:`JOINERS`)."""
    return [f"{a} {' '.join(j)} {b}" for a, b in pairs for j in JOINERS]


def library_phrases(library: TaskLibrary) -> list[str]:
    """Every command of ``library`` as a list for a phrase-list grammar (Vosk): its phrasings and every compound of
    two subtask phrasings by every joiner (2,610 for the shipped library); longer compounds need the JSGF grammar or
    free-form decoding."""
    subtasks = library.subtask_phrasings()
    return library.phrasings() + _compounds((a, b) for a in subtasks for b in subtasks if a != b)


def vosk_grammar(phrases: Sequence[str]) -> str:
    """The Vosk JSON grammar of ``phrases`` (e.g. ``TaskLibrary.phrasings()``): the phrases plus ``"[unk]"``."""
    return json.dumps(list(phrases) + ["[unk]"], ensure_ascii=False)


def _unique_phrases(phrases: Sequence[str], norm) -> list[str]:
    if isinstance(phrases, str):
        raise SpeechError("phrases must be a sequence of strings, not one string")
    out = sorted({norm(p) for p in phrases} - {""})
    if not out:
        raise SpeechError("no phrases to recognise: pass the task library's phrasings "
                          "(load_task_library().phrasings())")
    return out


class PocketSphinxRecognizer:
    """Grammar-constrained command recogniser on the pocketsphinx 5 en-us model (offline, CPU).

    Args:
        phrases: accepted commands (normalised with ``legion_language.tasks.normalise``), e.g.
            ``TaskLibrary.phrasings()``.
        min_confidence: reject hypotheses whose confidence (nats/frame, see :class:`Recognition`)
            is below this; ``None`` skips the phone-loop pass and accepts whatever the grammar decodes.
        library: decode with that task library's grammar (:func:`library_jsgf`: ``phrases`` and compound
            commands) and accept whatever ``library.plan`` accepts; None: exactly ``phrases``.
        free: decode free-form with a bigram model of :func:`command_sentences` (needs ``library``) and return what
            was heard, for the matcher (:mod:`legion_language.matching`) to understand or refuse; False: the grammar.

    Raises:
        SpeechError: no phrases, or a word missing from the pronunciation dictionary (CMUdict).
    """

    backend = "pocketsphinx"

    def __init__(self, phrases: Sequence[str], min_confidence: float | None = DEFAULT_MIN_CONFIDENCE,
                 library: TaskLibrary | None = None, free: bool = False):
        from pocketsphinx import Decoder

        if free and library is None:
            raise SpeechError("free-form decoding needs the task library (its phrasings and the labelled commands)")
        self.phrases = _unique_phrases(phrases, normalise)
        self.min_confidence = min_confidence
        self.library, self.free = library, free
        self._decoder = Decoder(lm=None, loglevel="FATAL")  # default en-us hmm + CMUdict from the wheel
        sentences = command_sentences(library) if free else self.phrases
        words = sorted({w for p in sentences for w in p.split()} | ({"and", "then"} if library else set()))
        missing = [w for w in words if self._decoder.lookup_word(w) is None]
        if missing:
            raise SpeechError(f"words not in the pocketsphinx dictionary (CMUdict): {missing}; rephrase the "
                              "command in the task library with dictionary words (spell out numbers)")
        if free:
            import tempfile

            from pocketsphinx import NGramModel

            with tempfile.NamedTemporaryFile("w", suffix=".arpa") as arpa:
                arpa.write(domain_arpa(sentences))
                arpa.flush()
                self._decoder.add_lm("commands", NGramModel(self._decoder.config, self._decoder.logmath, arpa.name))
        else:
            grammar = library_jsgf(library) if library else jsgf_grammar(self.phrases)
            self._decoder.add_fsg("commands", self._decoder.parse_jsgf(grammar))
        self._decoder.add_allphone_file("phone_loop")  # uniform phone loop: the rejection reference
        self._initial_cmn = self._decoder.get_cmn()

    @classmethod
    def from_library(cls, library: TaskLibrary,
                     min_confidence: float | None = DEFAULT_MIN_CONFIDENCE) -> "PocketSphinxRecognizer":
        """A recogniser for every command of ``library``, compound commands included (see the class)."""
        return cls(library.phrasings(), min_confidence, library)

    def _accepts(self, text: str) -> bool:
        if self.free:
            return bool(text)  # the matcher decides
        if self.library is None:
            return text in self.phrases
        try:
            self.library.plan(text)
        except UnknownCommandError:
            return False
        return True

    def _decode(self, search: str, data: bytes):
        d = self._decoder
        d.activate_search(search)
        # forget the noise and cepstral-mean estimates of earlier audio: same audio -> same result
        # (pocketsphinx 5 calls start_stream "deprecated and unnecessary", but it still resets the noise stats)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            d.start_stream()
        d.set_cmn(self._initial_cmn)
        d.start_utt()
        d.process_raw(data, full_utt=True)
        d.end_utt()
        return d.hyp()

    def transcribe(self, pcm: np.ndarray) -> Recognition:
        """Decode one utterance.

        Args:
            pcm: int16 (N,) samples at 16 kHz, mono.

        Returns:
            :class:`Recognition`; ``text`` is one of :attr:`phrases` (or a compound command of :attr:`library`)
            or ``''``.

        Raises:
            SpeechError: ``pcm`` is not a 1-D int16 array.
        """
        pcm = _check_pcm(pcm)
        t0 = time.perf_counter()
        if pcm.size == 0:
            return Recognition("", None, 0.0)
        # +-1 LSB dither from a fixed seed: digital silence (exact zeros, e.g. padded files) derails the
        # decoder's noise and energy estimates; a fixed seed keeps results reproducible
        dither = np.random.default_rng(0).integers(-1, 2, pcm.size, dtype=np.int16)
        data = np.clip(pcm.astype(np.int32) + dither, -32768, 32767).astype("<i2").tobytes()
        hyp = self._decode("commands", data)
        # the FSG search reports the best partial path when no path reaches the final state
        text = normalise(hyp.hypstr) if hyp is not None else ""
        if not self._accepts(text):
            return Recognition("", None, time.perf_counter() - t0)
        confidence = None
        if self.min_confidence is not None:
            confidence = self._confidence(data)
            if confidence < self.min_confidence:
                text = ""
        return Recognition(text, confidence, time.perf_counter() - t0)

    def _confidence(self, data: bytes) -> float:
        """Min over grammar words of (word log-lik - phone-loop log-lik over its frames) / frames, nats."""
        d, logmath = self._decoder, self._decoder.logmath
        words = [(s.start_frame, s.end_frame, logmath.log_to_ln(logmath.log(s.ascore)))
                 for s in (d.seg() or []) if not s.word.startswith(("<", "[", "+"))]
        self._decode("phone_loop", data)
        per_frame = np.zeros(d.n_frames() + 1)
        for s in d.seg() or []:  # spread each phone's score evenly over its frames
            ln = logmath.log_to_ln(logmath.log(s.ascore) << _SENSCR_SHIFT)
            per_frame[s.start_frame:s.end_frame + 1] = ln / (s.end_frame - s.start_frame + 1)
        ratios = [(score - per_frame[sf:ef + 1].sum()) / (ef - sf + 1) for sf, ef, score in words]
        return float(min(ratios)) if ratios else -math.inf


class VoskRecognizer:
    """Vosk (Kaldi) recogniser, streaming: the backend used on the robot.

    Args:
        model_path: folder of an unpacked Vosk model (e.g. ``vosk-model-small-en-us-0.15``).
        phrases: if given, decoding is restricted to these phrases plus ``[unk]`` (a Vosk JSON
            grammar; needs a model with a dynamic graph, ``graph/HCLr.fst`` + ``Gr.fst``, else Vosk
            ignores it with a warning), and any result that is not exactly one phrase comes back as
            ``''``. ``None``: free decoding.
        sample_rate: audio rate in Hz (16000 for the project's audio).

    Raises:
        SpeechError: the folder does not exist or Vosk cannot load a model from it.
    """

    backend = "vosk"

    def __init__(self, model_path: str | Path, phrases: Sequence[str] | None = None,
                 sample_rate: int = SAMPLE_RATE_HZ):
        import vosk

        path = Path(model_path)
        if not path.is_dir():
            raise SpeechError(f"no Vosk model folder at {path}: download a model from "
                              "https://alphacephei.com/vosk/models, unpack it and pass its folder")
        vosk.SetLogLevel(-1)  # warnings and errors only
        try:
            self._model = vosk.Model(str(path))
        except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
            raise SpeechError(f"Vosk could not load a model from {path} ({exc}): the folder needs am/, conf/ "
                              "and graph/ of an unpacked Vosk model") from exc
        self._vosk = vosk
        self.sample_rate = int(sample_rate)
        # Unicode-safe normalisation (models exist for many languages)
        self.phrases = None if phrases is None else _unique_phrases(phrases, lambda p: " ".join(p.lower().split()))
        self._recognizer = self._new_recognizer()

    def _new_recognizer(self):
        if self.phrases is None:
            rec = self._vosk.KaldiRecognizer(self._model, self.sample_rate)
        else:
            rec = self._vosk.KaldiRecognizer(self._model, self.sample_rate, vosk_grammar(self.phrases))
        rec.SetWords(True)  # per-word confidences
        return rec

    def _recognition(self, result_json: str, seconds: float) -> Recognition:
        result = json.loads(result_json)
        text = " ".join(result.get("text", "").lower().split())
        confs = [w["conf"] for w in result.get("result", []) if "conf" in w]
        if self.phrases is not None and text not in self.phrases:
            text = ""  # out-of-grammar ([unk]) or partial phrase
        return Recognition(text, min(confs) if confs else None, seconds)

    def accept_chunk(self, pcm: np.ndarray) -> Recognition | None:
        """Feed the next chunk of a stream (any length; 0.1-0.5 s is typical).

        Returns:
            the finished utterance when Vosk's endpointer detected its end in this chunk, else ``None``
            (then :meth:`partial` gives the words so far).
        """
        t0 = time.perf_counter()
        if self._recognizer.AcceptWaveform(_check_pcm(pcm).tobytes()):
            return self._recognition(self._recognizer.Result(), time.perf_counter() - t0)
        return None

    def partial(self) -> str:
        """Words decoded so far in the current utterance (unfiltered by the grammar check)."""
        return " ".join(json.loads(self._recognizer.PartialResult()).get("partial", "").lower().split())

    def finish(self) -> Recognition:
        """End the stream: flush the decoder, return the last utterance and start a fresh one."""
        t0 = time.perf_counter()
        result = self._recognition(self._recognizer.FinalResult(), time.perf_counter() - t0)
        self._recognizer = self._new_recognizer()
        return result

    def transcribe(self, pcm: np.ndarray, chunk_samples: int = 4000) -> Recognition:
        """Decode a whole recording by streaming it in ``chunk_samples`` pieces (4000 = 0.25 s).

        Returns:
            :class:`Recognition` of all utterances joined; with ``phrases``, ``text`` is one phrase or ``''``.
        """
        pcm = _check_pcm(pcm)
        t0 = time.perf_counter()
        self._recognizer = self._new_recognizer()
        parts = [self.accept_chunk(pcm[i:i + chunk_samples]) for i in range(0, len(pcm), chunk_samples)]
        parts = [p for p in parts if p is not None] + [self.finish()]
        heard = [p for p in parts if p.text]
        text = " ".join(p.text for p in heard)
        confs = [p.confidence for p in heard if p.confidence is not None]
        return Recognition(text, min(confs) if confs else None, time.perf_counter() - t0)


def make_recognizer(backend: str = "pocketsphinx", phrases: Sequence[str] | None = None,
                    model_path: str | Path | None = None,
                    library: TaskLibrary | None = None, free: bool = False) -> PocketSphinxRecognizer | VoskRecognizer:
    """Build a command recogniser.

    Args:
        backend: ``"pocketsphinx"`` (embedded en-us model) or ``"vosk"`` (needs ``model_path``).
        phrases: accepted commands; default: every phrasing of the shipped task library.
        model_path: Vosk model folder (ignored by pocketsphinx).
        library: decode with the library's grammar, compound commands included ("close the drawer then press the
            button"): pocketsphinx's JSGF (:func:`library_jsgf`), Vosk's phrase list (:func:`library_phrases`).
        free: free-form decoding for commands in one's own words (then :mod:`legion_language.matching`):
            pocketsphinx with a bigram model of the commands (:func:`command_sentences`, needs ``library``), vosk
            with its model's own language model. False: the closed command set (a safety feature: the default).

    Raises:
        ValueError: unknown backend.
        SpeechError: vosk without ``model_path``, or the recogniser cannot start.
    """
    if phrases is None:
        from legion_language.tasks import load_task_library

        phrases = load_task_library().phrasings()
    if backend == "pocketsphinx":
        return PocketSphinxRecognizer(phrases, library=library, free=free)
    if backend == "vosk":
        if model_path is None:
            raise SpeechError("the vosk backend needs model_path, the folder of an unpacked Vosk model")
        return VoskRecognizer(model_path, None if free else (library_phrases(library) if library else phrases))
    raise ValueError(f"unknown speech backend {backend!r}; choose 'pocketsphinx' or 'vosk'")


class MicrophoneUnavailable(SpeechError):
    """No microphone can be opened (no PortAudio library, no input device); the message says which and what to do."""


def open_microphone(sample_rate_hz: int, on_samples: Callable[[np.ndarray], None]):
    """Start recording the default input device: mono int16 at ``sample_rate_hz``, blocks passed to ``on_samples``
    as (n,) int16 arrays from PortAudio's thread (sounddevice).

    Returns:
        the started ``sounddevice.InputStream`` (call ``close()`` to stop).

    Raises:
        MicrophoneUnavailable: sounddevice is not installed, the PortAudio library is missing (Debian/Ubuntu package
            libportaudio2), or there is no input device (a server, a container without ``/dev/snd``).
    """
    try:
        import sounddevice
    except ImportError as exc:
        raise MicrophoneUnavailable("sounddevice is not installed (pip install sounddevice)") from exc
    except OSError as exc:  # sounddevice loads PortAudio at import
        raise MicrophoneUnavailable(f"{exc} (install the libportaudio2 package)") from exc
    try:
        stream = sounddevice.InputStream(samplerate=sample_rate_hz, channels=1, dtype="int16",
                                         callback=lambda data, *_: on_samples(data[:, 0].copy()))
        stream.start()
    except sounddevice.PortAudioError as exc:
        raise MicrophoneUnavailable(f"no audio input device ({exc}); on the robot PC pass /dev/snd to the "
                                    "container, or use audio_source: topic") from exc
    return stream
