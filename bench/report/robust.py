"""Robustness by variant: ``bench.eval_robust``'s measurement, for ``python -m bench``'s report.

Full run: every perturbation (bench/perturb.py) of the shared evaluation calls and the composed
development set (bench/devset.py), with the plain run beside. Quick run: the leak section's two fixture
calls under the five external-check variants only, to show the section works, not for quoting.
"""

from __future__ import annotations

import os
from typing import Any

from bench import eval_robust, perturb
from bench.eval_pii import SHARED_CALLS, truth_calls
from bench.report.leak import QUICK_CALLS
from bleepline.speech.models import ModelSpec


def run(model: ModelSpec, quick: bool) -> dict[str, Any]:
    if quick:
        paths = [p for p in truth_calls("fixtures") if p.stem in QUICK_CALLS]
        variants, sets = list(perturb.FIVE), ["fixtures (quick)"]
    elif SHARED_CALLS.is_dir():
        from bench import devset

        paths = truth_calls("shared") + devset.ensure()
        variants, sets = list(perturb.VARIANTS), ["shared", "dev"]
    else:
        # Without ../shared/speech there is neither the shared set nor the material for the dev set.
        paths = truth_calls("fixtures")
        variants, sets = list(perturb.VARIANTS), ["fixtures (../shared/speech not present)"]
    # Call x variant runs are independent: one worker per core (the section measures quality, not time).
    jobs = 1 if quick else max(1, min(len(os.sched_getaffinity(0)), 4))
    result = eval_robust.run(paths, variants, jobs, model)
    result["call_sets"] = sets
    result["jobs"] = jobs
    return result
