"""The attacks check's gallery: originals, their perturbations (amplified to be visible) and the
adversarial images, each with the model's answer; drawing is `auditor.plotting`' job."""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

__all__ = ["gallery"]

N_SHOWN = 6


def _labels(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, classes: Sequence[str]) -> list[str]:
    with torch.no_grad():
        p = torch.softmax(model(x).float(), dim=1).cpu()
    conf, idx = p.max(dim=1)
    return [f"{classes[int(i)] if int(i) < len(classes) else int(i)} {float(c):.2f}" for i, c in zip(idx, conf)]


def gallery(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, x_adv: torch.Tensor, eps: float,
            classes: Sequence[str], caption_eps: str) -> dict[str, str]:
    """A figure of up to `N_SHOWN` images: original, perturbation (0.5 + delta * 0.5 / eps, so the
    eps ball spans the grey range) and adversarial, with the model's answers; raises ImportError
    without matplotlib."""
    from auditor import plotting as draw

    x, x_adv = x[:N_SHOWN], x_adv[:N_SHOWN]
    delta = (0.5 + (x_adv - x) * (0.5 / max(eps, 1e-12))).clamp(0.0, 1.0)

    def hwc(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().permute(0, 2, 3, 1).numpy()

    uri = draw.image_rows([hwc(x), hwc(delta), hwc(x_adv)],
                          [_labels(model, x, classes), [""] * len(x), _labels(model, x_adv, classes)],
                          ("original", "perturbation", "adversarial"), title=f"PGD L-inf at eps {caption_eps}")
    return {"data_uri": uri, "caption": (f"Images the model got right and PGD fooled at L-inf eps {caption_eps}: the original, "
                                         "the perturbation (amplified: mid-grey is no change) and the adversarial image, "
                                         "with the model's answer and confidence.")}
