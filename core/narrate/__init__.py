"""Sentences that read the measured numbers for the learner.

All of the app's prose that depends on a measurement lives here: the sentence under
a run's charts (:func:`describe_gradient`, from a probe's summary, see
:func:`core.probe.summarise`), and the Explain page's sentences and verdicts (from
the dicts and tables of :mod:`core.explain`). The measuring code returns numbers;
these functions only put them into words: no number here is assumed or simulated.

Modules (one file held ~840 lines): ``numbers`` (sci, duration), ``gradient`` (the
sentence under a run's charts, the Compare sentence), ``explain`` (the Explain page's
sentences), ``verdicts`` (the three answers), ``purelag`` (issue 16's sentences).
"""

from __future__ import annotations

from core.narrate.numbers import (  # noqa: F401 - the package's public names
    VERDICTS,
    sci,
)
from core.narrate.gradient import (  # noqa: F401 - the package's public names
    Band,
    RATIO_BANDS,
    AT_BASELINE,
    OPEN_UNIT,
    ratio_band,
    ratio_scale,
    probe_context,
    describe_gradient,
    compare_sentence,
)
from core.narrate.explain import (  # noqa: F401 - the package's public names
    QUESTION,
    QUESTION_URL,
    explain_answer,
    rnn_sentence,
    lstm_sentence,
    forget_sentence,
    gru_sentence,
    trained_sentence,
)
from core.narrate.verdicts import (  # noqa: F401 - the package's public names
    Verdict,
    verdicts,
)
from core.narrate.purelag import (  # noqa: F401 - the package's public names
    duration,
    shipped_cell_sentence,
    pure_lag_gradient_sentence,
    first_steps_sentence,
    marker_sentence,
    input_gate_sentence,
    no_forget_gate_sentence,
    pure_lag_law_sentence,
)
