"""speech: microphone or audio topic -> recognised command text (std_msgs/String).

Logic: :func:`legion_language.speech.make_recognizer` (pocketsphinx with its en-us model, or vosk with
``vosk_model_path``), constrained by the task library's grammar (compound commands included) when ``use_grammar``
(the default: a closed command set); otherwise free-form (pocketsphinx: a bigram model of the commands; vosk: its
model's own), and the task sequencer's matcher understands or refuses what was heard.
Audio is cut into utterances of ``utterance_s`` seconds, from 16 kHz int16 messages on ``topics.audio``, or with
``audio_source: microphone`` from the default microphone (:func:`legion_language.speech.open_microphone`). Without
a microphone (no PortAudio, no input device) the node says so on /diagnostics (WARN, once a second) and keeps serving
the audio topic. Only a recognised command is published; silence and rejected speech publish nothing.
"""
import numpy as np

from legion_nodes._ros import LegionNode, run
from legion_language.speech import MicrophoneUnavailable, make_recognizer, open_microphone
from legion_language.tasks import load_task_library
from legion_runtime import messages as m


class SpeechNode(LegionNode):
    def __init__(self):
        super().__init__("speech")
        library = load_task_library()
        self.recognizer = make_recognizer(self.param("backend"), phrases=library.phrasings(),
                                          model_path=self.param("vosk_model_path") or None, library=library,
                                          free=not self.param("use_grammar"))
        self.utterance = int(self.param("utterance_s") * self.param("sample_rate_hz"))
        self.buffer = np.zeros(0, np.int16)
        source = self.param("audio_source")
        if source not in ("microphone", "topic"):
            raise ValueError(f"audio_source must be 'microphone' or 'topic', got {source!r}")
        self.microphone = "not used (audio_source: topic)"
        if source == "microphone":
            try:
                self.stream = open_microphone(self.param("sample_rate_hz"), self.on_samples)
                self.microphone = "recording"
            except MicrophoneUnavailable as exc:  # keep serving the audio topic, and say so on /diagnostics
                self.microphone = f"no microphone: {exc}; listening on {self.topic_name('audio')} only"
                self.get_logger().warning(self.microphone)
        if self.microphone != "recording":  # one audio source at a time: the topic when there is no microphone
            self.subscribe("audio", lambda msg: self.on_samples(m.audio_from_msg(msg)))
        self.create_timer(1.0, self.publish_diagnostics)
        self.publish_diagnostics()

    def publish_diagnostics(self) -> None:
        level = m.DIAG_WARN if self.microphone.startswith("no microphone") else m.DIAG_OK
        self.publish("diagnostics", m.diagnostics_to_msg("legion: speech", level, self.microphone,
                                                         {"backend": self.param("backend")}, self.now_s()))

    def on_samples(self, pcm: np.ndarray) -> None:
        self.buffer = np.concatenate([self.buffer, pcm.astype(np.int16)])
        while len(self.buffer) >= self.utterance:
            chunk, self.buffer = self.buffer[: self.utterance], self.buffer[self.utterance:]
            text = self.recognizer.transcribe(chunk).text
            if text:
                self.get_logger().info(f"heard {text!r}")
                self.publish("command_text", m.command_to_msg(text))


def main(args=None):
    run(SpeechNode, args)
