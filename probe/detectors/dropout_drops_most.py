"""
## What it detects
A dropout layer that drops most of what it is given during training: at the measured training
forwards, a Dropout layer keeps at most `max_kept_share` of its non-zero inputs, in `min_checks`
checks or more.

## Why it matters
`nn.Dropout(p)` zeroes a share `p` of its inputs and scales the rest by 1 / (1 - p). At p = 0.9
(what TensorFlow 1's `keep_prob=0.9` meant as "keep 90%") one unit in ten reaches the next layer,
each ten times larger: the signal is mostly noise, the gradients reach a tenth of the units, and
the model underfits with a loss that stalls high. Usual rates are 0.1 to 0.5. Reported only as
the evidence for ML210: a denoising autoencoder drops most of its input on purpose. In-place
dropout and AlphaDropout (which does not zero what it drops) are not measured.

## Thresholds
- `max_kept_share` = 0.2: at most 20% of the non-zero inputs kept (dropout of 0.8 or more, the
  smallest value ML210 reports).
- `min_checks` = 2: activation checks (default every 10 steps) that must show it.
Srivastava et al., "Dropout: A Simple Way to Prevent Neural Networks from Overfitting" (JMLR
2014), section 7.2: retention probabilities of 0.5 to 0.8 for hidden units; it is ML210's static
hypothesis.
"""

from __future__ import annotations

import statistics

from mlplint.probe.detectors import Judgement, Observed, fmt
from mlplint.probe.stats import Stats

THRESHOLDS = {"max_kept_share": 0.2, "min_checks": 2}


def judge(stats: Stats, t: dict) -> Judgement:
    observed, measured = [], []
    for (model, layer), checks in stats.layer_checks().items():
        kept = [(r["step"], r["kept_share"]) for r in checks if r.get("kept_share") is not None]
        if not kept:
            continue
        lowest = min(share for _, share in kept)
        measured.append(f"{checks[0]['type']} '{layer}' kept at least {fmt(100 * lowest)}% of its non-zero inputs")
        flagged = [(step, share) for step, share in kept if share <= t["max_kept_share"]]
        if len(flagged) >= t["min_checks"]:
            typical = statistics.median_high([share for _, share in flagged])
            observed.append(Observed(
                f"{checks[0]['type']} keeps only {fmt(100 * typical)}% of its inputs during training ({len(flagged)} of "
                f"{len(kept)} checks): dropout p is the share dropped, not kept", stats.layer_label(model, layer), flagged[0][0]))
    return Judgement("ML937", tuple(observed), bool(measured), "; ".join(measured))
