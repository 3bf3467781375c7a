"""The results model, below every stage: what a run records and how it is read back.

- :mod:`~brain2music.results.settings` — the frozen settings of every stage (:class:`StudySettings`,
  :class:`DataSource`, :class:`ReconstructSettings`), recorded in the results they produce.
"""
