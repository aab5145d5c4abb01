"""LEGION's language front end: what the user says becomes subtasks and their language embeddings.

- :mod:`legion_language.speech`: audio → text (pocketsphinx with the library's grammar; vosk).
- :mod:`legion_language.tasks`: the task library (subtasks, their phrasings, goals and success tests; long-horizon
  tasks) and parsing of library phrasings and compound commands.
- :mod:`legion_language.matching`: a command in the user's own words → the library's meaning, through the language
  model's embeddings, with a threshold and a margin chosen on a labelled set.
- :mod:`legion_language.embedding`: text → language embedding l (the model the checkpoint records).
- :mod:`legion_language.sequencer`: a plan → subtasks one at a time, with retries and success checks.

No ROS, no torch model of the agent here; the agent (:mod:`legion_policy`) imports this package, never the reverse.
"""
