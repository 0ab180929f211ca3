"""The explanations check in words: its methodology paragraphs (each attribution method with its
settings, deletion and insertion, the sanity check, the differences between groups) and limitations,
read from the run's own parameters. Plain sentences; each output escapes them.
"""
from __future__ import annotations

from typing import Any

from auditor.report._format import as_dict, as_list, fmt_plain, metric_value, short
from auditor.report._method import OPERATORS, pct, whole

__all__ = ["limitations", "methodology"]


def _ex_methods(params: dict[str, Any]) -> list[str]:
    """A sentence per attribution method the run asked for, with its settings from ``params``."""
    steps, samples = whole(params.get("ig_steps")), whole(params.get("nt_samples"))
    stdev = params.get("nt_stdev")
    window, stride = whole(params.get("occlusion_window")), whole(params.get("occlusion_stride"))
    layer = params.get("layer")
    mask = whole(params.get("mask_steps"))
    known = {
        "integrated_gradients": "Integrated Gradients (Sundararajan et al. 2017) adds up the gradient of the class score "
        "along a straight path from a baseline image (the fill the deletion curve uses) to the image"
        + (f", in {steps} steps" if steps else ""),
        "saliency": "Saliency (Simonyan et al. 2014) is the size of the class score's gradient at each pixel",
        "smoothgrad": "SmoothGrad (Smilkov et al. 2017) averages the saliency of "
        + (f"{samples} copies" if samples else "copies") + " of the image with Gaussian noise"
        + (f" of standard deviation {fmt_plain(stdev)}" if metric_value(stdev) is not None else "") + " added",
        "grad_cam": "Grad-CAM (Selvaraju et al. 2017) weighs the feature maps of a convolutional layer ("
        + (f"“{short(layer, 60)}”" if isinstance(layer, str) and layer.strip() else "the last one") + ") by the class "
        "score's gradient and upsamples the result to the image",
        "occlusion": "Occlusion (Zeiler & Fergus 2014) covers the image with a "
        + (f"patch of {window}×{window} pixels moved {stride or '?'} pixels at a time" if window else "patch moved over it")
        + " and records how much the class probability drops",
        "perturbation_mask": "Meaningful perturbation (Fong & Vedaldi 2017) learns a smooth mask by gradient descent"
        + (f" in {mask} steps" if mask else "") + " over the smallest region whose removal destroys the class score",
    }
    asked = [m for m in as_list(params.get("methods")) if isinstance(m, str)] or list(known)
    return [known.get(m, f"{short(m, 60)}: a method this report does not describe") + "." for m in asked[:12]]


def methodology(params: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the explanations check, read from its parameters."""
    n, n_sanity = whole(params.get("n_images")), whole(params.get("n_sanity"))
    op = str(params.get("operator") or "")
    how = OPERATORS.get(op, f"perturbed by the “{short(op, 40)}” operator" if op else "replaced by the run's perturbation")
    steps, stages = whole(params.get("curve_steps")), whole(params.get("sanity_stages"))
    conf = params.get("confidence")
    interval = f"a {pct(conf)} bootstrap interval" if metric_value(conf) is not None else "a bootstrap interval"
    threshold = params.get("sanity_threshold")
    threshold = fmt_plain(threshold) if metric_value(threshold) is not None else "the configured threshold"
    min_n = whole(params.get("min_group_size"))
    cm_steps = whole(params.get("class_model_steps"))
    least = params.get("min_difference")
    alpha = fmt_plain(params["alpha"]) if metric_value(params.get("alpha")) is not None else "0.05"
    n_perm = params.get("n_perm")
    perms = f"{n_perm:,} random permutations" if isinstance(n_perm, int) and not isinstance(n_perm, bool) and n_perm > 0 \
        else "random permutations"
    test = (f" Each difference is tested against {perms} of the group labels (one-sided), and the p-values of all "
            "the differences are adjusted together by Holm's method; a p-value at the permutation floor, 1/(B + 1) "
            "for B permutations, is printed as “<”, since no permutation reached the observed gap.")
    finding = test + (f" A difference of at least {fmt_plain(least)} whose adjusted p-value is below {alpha} is "
                      "reported as a finding (the interval of a gap between the highest and the lowest group lies "
                      "above 0 almost always, so it cannot decide)." if metric_value(least) is not None else "")
    return [
        {"title": "Attribution methods", "text": (
            (f"For {n} audited images" if n else "For a sample of the audited images") + ", each method gives a map of "
            "how much each pixel counts for the class being explained (computed with captum). " + " ".join(_ex_methods(params))
            + " A method that cannot run on this model is marked not run, with the reason.")},
        {"title": "Deletion and insertion", "text": (
            "Whether a map is faithful to the model is measured by deletion and insertion (Petsiuk et al. 2018, RISE). "
            "The pixels are ranked by their attribution and removed, most important first, "
            + (f"in {steps} equal steps" if steps else "step by step") + f"; removed pixels are {how}. The deletion AUC is "
            "the area under the explained class's probability along the way: lower is better, because a map that finds "
            "what the model uses destroys the prediction quickly. Insertion starts from the image with every pixel "
            "removed and puts them back in the same order: higher is better. A random pixel order on the same images is "
            "the baseline: each method's gain is its paired difference from the random order's area (random minus "
            f"method for deletion, method minus random for insertion), with {interval} over the images, and a method is "
            "called faithful when its deletion gain's interval lies above 0.")},
        {"title": "Sanity check", "text": (
            "A map that explains the model must change when the model is destroyed (Adebayo et al. 2018, cascading "
            "randomisation). The model's layers are re-initialised at random from the output down"
            + (f" in {stages} stages" if stages else "") + (f", on {n_sanity} images" if n_sanity else "") + "; at each "
            "stage the maps are recomputed and compared with the original model's by the rank correlation of "
            "|attribution|. A method is flagged (fails the sanity check) when the rank correlation between its map on "
            f"the original model and on the fully randomised one stays above {threshold}: its map then shows the image "
            "more than the model. Methods too costly to recompute at every stage are marked not run.")},
        {"title": "Explanations by group", "text": (
            "The deletion and insertion AUCs and the subject share (the share of |attribution| inside the subject's "
            "box, when the probe has boxes) are computed per group of each sensitive attribute, on images drawn as "
            "evenly across each attribute's groups as the probe allows (seeded). For each attribute, the "
            f"difference between the highest and the lowest group is reported with {interval}, for the method named "
            "next to it; a difference is compared only between groups with "
            + (f"at least {min_n} images" if min_n else "enough images") + ", and the others are shown but marked "
            "insufficient data." + finding + " When a group's maps fall less on the subject than another's, the model's "
            "evidence for that group lies more elsewhere in the image.")},
        {"title": "First-layer filters and class models", "text": (
            "The first convolutional layer's filters are drawn as small images, with a smoothness score: a trained "
            "layer usually shows smooth edge and colour detectors, while noisy filters suggest an untrained or damaged "
            "layer. For each class, a class model (Simonyan et al. 2014) is an input optimised by gradient ascent"
            + (f" in {cm_steps} steps" if cm_steps else "") + " to raise that class's score: it shows what the model "
            "has learned to look for, and its final probability how far the optimisation got.")},
    ]


def limitations(check: dict[str, Any]) -> list[str]:
    params = as_dict(check.get("params"))
    n, n_sanity = whole(params.get("n_images")), whole(params.get("n_sanity"))
    text = ("Explanations: an attribution map is one method's account of the model, not the model's reasoning; "
            "deletion and insertion measure faithfulness with one way of removing pixels and can rank the methods "
            "differently with another.")
    if n:
        text += f" The maps were computed for a sample of {n} images"
        text += f", the sanity check on {n_sanity}." if n_sanity else "."
    return [text]
