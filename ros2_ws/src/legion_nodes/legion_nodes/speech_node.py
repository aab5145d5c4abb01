"""speech: microphone or audio topic -> recognised command text (std_msgs/String).

Logic: :func:`legion_policy.speech.make_recognizer` (pocketsphinx with its en-us model, or vosk with
``vosk_model_path``), constrained by a grammar of the task library's phrasings when ``use_grammar``.
Audio is cut into utterances of ``utterance_s`` seconds, from the default microphone (sounddevice,
``audio_source: microphone``) or from 16 kHz int16 messages on ``topics.audio`` (``audio_source: topic``).
Only a recognised command is published; silence and rejected speech publish nothing.
"""
import numpy as np

from legion_nodes._ros import LegionNode, run
from legion_policy.speech import make_recognizer
from legion_policy.tasks import load_task_library
from legion_runtime import messages as m


class SpeechNode(LegionNode):
    def __init__(self):
        super().__init__("speech")
        phrases = load_task_library().phrasings() if self.param("use_grammar") else None
        self.recognizer = make_recognizer(self.param("backend"), phrases=phrases,
                                          model_path=self.param("vosk_model_path") or None)
        self.utterance = int(self.param("utterance_s") * self.param("sample_rate_hz"))
        self.buffer = np.zeros(0, np.int16)
        source = self.param("audio_source")
        if source == "topic":
            self.subscribe("audio", lambda msg: self.on_samples(m.audio_from_msg(msg)))
        elif source == "microphone":
            import sounddevice  # on the robot PC only (docker image); not needed for audio_source: topic

            self.stream = sounddevice.InputStream(samplerate=self.param("sample_rate_hz"), channels=1, dtype="int16",
                                                  callback=lambda data, *_: self.on_samples(data[:, 0].copy()))
            self.stream.start()
        else:
            raise ValueError(f"audio_source must be 'microphone' or 'topic', got {source!r}")

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
