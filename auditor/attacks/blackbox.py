"""Black-box query attacks: the model is only an oracle that answers with its predictions.

Andriushchenko et al., "Square Attack: a query-efficient black-box adversarial attack via random
search" (ECCV 2020): random square-shaped updates kept when they lower the margin loss; an
eps-bounded attack (linf or l2). Chen, Jordan & Wainwright, "HopSkipJumpAttack: A Query-Efficient
Decision-Based Attack" (IEEE S&P 2020): from an adversarial start, binary search to the decision
boundary, estimate the boundary's normal from label-only queries, step, repeat; a
minimal-perturbation attack (l2 or linf).

Both run through ART 1.20.1 (adversarial-robustness-toolbox); what is ours: the
:class:`CountingOracle` that counts every image the model is sent, the budget (``max_queries`` per
image, enforced and measured by our counter, not taken from ART's parameters), seeding, and
HopSkipJump's start (ART draws that from an unseeded generator; we draw it from ``seed``).

ART quirks handled by the private modules (``_oracle``, ``_square``, ``_hopskipjump``):

- ``SquareAttack`` requires an estimator with ART's ``NeuralNetworkMixin``, which ART's plain
  ``BlackBoxClassifier`` lacks (it raises ``EstimatorError``); ``BlackBoxClassifierNeuralNetwork`` is
  the smallest ART estimator that has it and still exposes only predictions (its gradient and loss
  methods raise ``NotImplementedError``). HopSkipJump gets the plain ``BlackBoxClassifier``.
- ART asks again for images it has just been told about (Square re-predicts the whole batch each
  iteration and re-evaluates the loss of the current images; HopSkipJump re-predicts its inputs and
  result on every call). The estimator remembers recent answers by image content, so an image is
  sent to the model once: Square costs at most one query per image per iteration.
- ART gets log-probabilities, not probabilities: Square's default loss is then the logit margin of
  the paper, and it does not saturate where a softmax rounds to 1.0 in float32.
- HopSkipJump in ART attacks away from the model's prediction and draws its starting point from
  ``np.random.RandomState()`` with no seed. Images the oracle already gets wrong are not attacked
  (success at distance 0); for the others we draw the start ourselves (uniform noise until the label
  changes, then a binary search towards the image) and pass it as ``x_adv_init``.
- Square's l2 variant uses Python's ``random`` as well as ``np.random``: both are seeded for the
  call and restored afterwards.
"""
from __future__ import annotations

from auditor.attacks._args import NORMS
from auditor.attacks._hopskipjump import hopskipjump
from auditor.attacks._oracle import LIBRARY, BlackBoxResult, CountingOracle
from auditor.attacks._square import square_attack

__all__ = [
    "LIBRARY",
    "NORMS",
    "BlackBoxResult",
    "CountingOracle",
    "hopskipjump",
    "square_attack",
]
