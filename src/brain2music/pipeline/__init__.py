"""Whole experiments: every stage, from simulation or data to the HTML report, from one configuration.

The top of the stage order: it imports the study stages, ``reconstruct`` and ``report``; nothing below
imports it.

- :func:`~brain2music.pipeline.experiment.run_experiment` — every enabled stage of a config file;
- :func:`~brain2music.pipeline.experiment.run_demo` — the embedded demo experiment;
- :func:`~brain2music.pipeline.experiment.check_experiment` — ``run --check``.
"""

from __future__ import annotations

from brain2music.pipeline.experiment import (
    check_experiment,
    compose_library,
    demo_config,
    run_demo,
    run_experiment,
)

__all__ = ["check_experiment", "compose_library", "demo_config", "run_demo", "run_experiment"]
