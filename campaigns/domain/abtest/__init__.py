"""A/B and multivariate testing: pure statistics and decision logic.

| module        | what it does                                                              |
|---------------|---------------------------------------------------------------------------|
| estimates     | per-variant estimates and variances (proportions, means, ratios by the delta method); |
|               | fixed-horizon tests; Fieller's relative intervals                         |
| sequential    | always-valid inference: normal-mixture confidence sequences / mSPRT p-values; the running state |
| bayes         | chance to beat control, probability of being best, Thompson-sampling weights |
| srm           | sample-ratio mismatch: anytime-valid Dirichlet–multinomial mixture        |
| holm          | Holm's step-down correction across variants                               |
| power         | sample size and duration, fixed and sequential                            |
| assignment    | deterministic weighted assignment of subjects by hashing                  |
| catalogue     | the metrics a test may use and the sufficient statistics each needs       |
| config        | a test's configuration, validated (every error at once)                   |
| analysis      | one look at a test: every variant against control, on every metric        |
| decision      | gates, SRM, guardrails and the test's conclusion                          |
| messages      | what the test workflow and its activities exchange                        |
| simulation    | seeded Monte-Carlo A/A and A/B tests that check the error rates            |

What a look shows never contradicts itself (significance, direction, estimate and intervals):
see `analysis`; the formulas and the measured error rates are in docs/ab-statistics.md.

Everything here is free of I/O. The test's workflow imports only `messages` (no scipy);
the statistics run in its activities and in the API.
"""
