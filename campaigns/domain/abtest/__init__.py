"""A/B and multivariate testing: pure statistics and decision logic.

| module        | what it does                                                                          |
|---------------|---------------------------------------------------------------------------------------|
| estimates     | per-variant estimates and variances (proportions, means, ratios by the delta method); |
|               | fixed-horizon tests                                                                   |
| sequential    | always-valid inference: normal-mixture confidence sequences / mSPRT p-values          |
| bayes         | chance to beat control, probability of being best, Thompson-sampling weights          |
| srm           | sample-ratio mismatch (chi-square)                                                    |
| holm          | Holm's step-down correction across variants                                           |
| power         | sample size and duration, fixed and sequential                                        |
| assignment    | deterministic weighted assignment of subjects by hashing                              |
| catalogue     | the metrics a test may use and the sufficient statistics each needs                   |
| config        | a test's configuration, validated (every error at once)                               |
| analysis      | one look at a test: every variant against control, on every metric                    |
| decision      | gates, SRM, guardrails and the test's conclusion                                      |
| simulation    | seeded Monte-Carlo A/A and A/B tests that check the error rates                       |

Everything here is free of I/O. What the test's workflow and its activities exchange is in
`campaigns.messages.abtest`, which the workflow imports (no scipy); the statistics run in its
activities and in the API.
"""
