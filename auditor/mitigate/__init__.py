"""The companion trainer: mitigations (adversarial debiasing, adversarial training, defensive distillation)
applied to a classifier, trained with one seeded loop (`auditor.mitigate.loop`)."""
