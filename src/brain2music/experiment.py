"""Old import path of :mod:`brain2music.study.experiment` (kept for existing scripts)."""

from brain2music.study.experiment import (  # noqa: F401
    DEMO_OUT,
    STAGES,
    compose_library,
    demo_config,
    run_demo,
    run_experiment,
)
