"""Methodology and limitations: how the numbers were computed, read from the run's own parameters so
the text stays true when the parameters change. Plain sentences; the template escapes them."""
from __future__ import annotations

from typing import Any

from auditor.report._format import as_dict, as_list, dig, fmt_plain, metric_value, short

__all__ = ["methodology"]

_CORRECTIONS = {
    "holm": "Holm's step-down method, which keeps the chance of any false alarm among them at alpha",
    "bh": "the Benjamini-Hochberg method, which keeps the expected share of false alarms among the flagged gaps at alpha",
}


def _pct(x: Any) -> str:
    return f"{x * 100:g}%" if isinstance(x, (int, float)) and not isinstance(x, bool) else "the configured"


def _num(x: Any, default: str = "the configured number of") -> str:
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) else default


def _group_metrics(params: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the group metrics check."""
    out = []
    min_n = params.get("min_group_size")
    conf, n_boot = params.get("confidence"), params.get("n_boot")
    if n_boot == 0:
        out.append({"title": "Intervals", "text": "No intervals were computed (n_boot = 0): every value is a point estimate."})
    else:
        out.append({"title": "Intervals", "text": (
            f"Every rate and every disparity carries a {_pct(conf)} percentile bootstrap interval from "
            f"{_num(n_boot)} resamples of the audited images, drawn as multinomial resamples of each group's "
            "confusion counts and seeded by the run's seed, so a re-run gives the same intervals. An interval "
            "describes the sampling uncertainty of this probe, not how the model would do on other data. The "
            "interval of a gap follows the two groups behind it through every resample, so it can reach below 0 "
            "(a ratio above 1) when the order of the two groups is uncertain. Those two groups were picked as the "
            "extremes, which makes the observed gap lean upward; whether a gap is real is judged by its test, "
            "which accounts for that choice, not by its interval.")})
    if not any(k in params for k in ("n_perm", "correction", "alpha")):
        out.append({"title": "Tests", "text": "This run recorded no significance tests: gaps are reported with their "
                    "intervals only, and no gap is called significant."})
        return out + _rest(params, min_n, None)
    tests = ("Each group's rate is compared with the rest of its scope by a two-sided Fisher exact test "
             "(the p-values next to group values).")
    if params.get("n_perm"):
        tests += (f" Each gap between the highest and the lowest group is tested against {_num(params['n_perm'])} random "
                  "permutations of the group labels that keep every group's size: the p-value is the share of "
                  "permutations with a gap at least as large (one-sided). Calibration gaps (ECE, Brier) and scopes "
                  "with many groups and cells use fewer permutations, at least 1,000 (recorded per scope in "
                  "results.json as n_perm and n_perm_calibration).")
    corr = str(params.get("correction") or "")
    alpha = params.get("alpha")
    if corr:
        tests += (f" Because many comparisons are made, the p-values are adjusted by "
                  f"{_CORRECTIONS.get(corr, short(corr, 40))}; a gap is called significant when its adjusted "
                  f"p-value is below alpha = {fmt_plain(alpha)}.")
    out.append({"title": "Tests and corrections", "text": tests})
    return out + _rest(params, min_n, alpha)


def _rest(params: dict[str, Any], min_n: Any, alpha: Any) -> list[dict[str, str]]:
    out = []
    if min_n is not None:
        out.append({"title": "Minimum group size", "text": (
            f"Groups (and intersections) with fewer than {fmt_plain(min_n)} images are marked “insufficient data”: "
            "their values are shown but they are left out of every disparity, and a clause that needs them is "
            "inconclusive, never a silent pass.")})
    if params.get("power") is not None:
        out.append({"title": "Power and sample size", "text": (
            f"For each gap of a rate that is a single proportion, the power of a two-sided two-proportion z-test at "
            f"level {fmt_plain(alpha)} to detect the observed gap with the current group sizes, and the group size "
            f"needed for {_pct(params.get('power'))} power (Fleiss' formula, normal approximation). “About N more "
            "images” is that size minus what the probe has; for a small group it is also at least what reaches the "
            "minimum group size. It assumes the observed rates are the true ones, so treat it as an order of magnitude.")})
    if params.get("ece_bins") is not None:
        out.append({"title": "Calibration", "text": (
            f"Expected calibration error (ECE) bins the predicted probability of the predicted class into "
            f"{fmt_plain(params['ece_bins'])} equal-width bins and averages |accuracy − confidence| weighted by bin size; "
            "the Brier score is the mean squared error of the predicted probabilities. Lower is better for both.")})
    avg = params.get("averaging")
    pos = params.get("positive_class")
    if avg == "binary" or pos is not None:
        out.append({"title": "Positive class", "text": (
            f"Selection rate, TPR, FPR and precision are computed for the positive class “{short(pos, 80)}”: "
            "selection rate is the share of images predicted positive; TPR the share of positive images predicted "
            "positive; FPR the share of negative images predicted positive. Error rate, FNR and TNR are 1 − accuracy, "
            "1 − TPR and 1 − FPR.")})
    elif avg:
        out.append({"title": "Averaging", "text": (
            f"The model has more than two classes: selection rate, TPR, FPR and precision are {short(avg, 40)} "
            "one-vs-rest means over the classes; the per-class values are in the per-class tables and results.json.")})
    order = params.get("max_intersection_order")
    if isinstance(order, int) and order >= 2:
        out.append({"title": "Intersections", "text": (
            f"Intersections of up to {order} attributes are measured as groups of their own (e.g. female & black), "
            "because a model can treat an intersection worse than either attribute alone would suggest. They split "
            "the probe thinly: many have too few images, which the heatmaps mark.")})
    return out


_OPERATORS = {
    "fill": "filled with a constant colour, which removes colour and texture",
    "blur": "blended with a blurred copy of the image, which keeps colour",
    "pyramid": "replaced by a level of a blur pyramid that the mask value selects, which keeps colour",
}


def _spurious(params: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the spurious check, read from its parameters."""
    grid = params.get("grid")
    g = f"{grid}×{grid}" if isinstance(grid, int) and not isinstance(grid, bool) else "coarse"
    op = str(params.get("operator") or "")
    how = _OPERATORS.get(op, f"perturbed by the “{short(op, 40)}” operator" if op else "replaced by the run's perturbation")
    lr = f" (Adam, learning rate {fmt_plain(params['lr'])})" if isinstance(params.get("lr"), (int, float)) else ""
    keep = params.get("game") == "preservation"
    game = ("the preservation game looks for the smallest region that alone keeps the predicted class's score." if keep
            else "the deletion game looks for the smallest region whose removal destroys the predicted class's score.")
    margin = params.get("min_margin")
    margin = (f"{margin * 100:g} percentage points" if isinstance(margin, (int, float)) and not isinstance(margin, bool)
              else "the configured margin")
    rate = params.get("min_flip_rate")
    rate = _pct(rate) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else "the configured share"
    alpha = fmt_plain(params["alpha"]) if isinstance(params.get("alpha"), (int, float)) else "alpha"
    factor = fmt_plain(params.get("candidate_factor")) if isinstance(params.get("candidate_factor"), (int, float)) else "the configured"
    cons, limit = params.get("candidate_min_consistency"), params.get("candidates_per_class")
    return [
        {"title": "Evidence masks", "text": (
            f"For {_num(params.get('n_images'))} audited images, sampled evenly over the predicted classes, a mask is "
            f"learned by gradient descent{lr} in {_num(params.get('steps'), 'the configured number of')} steps (both "
            f"scale with --budget unless set): {game} The mask is learned at low resolution and upsampled smoothly; an area term "
            "keeps it small and a total-variation term keeps it in one piece; the image is jittered by a few pixels "
            f"at each step so the mask cannot rely on pixel-exact (adversarial) patterns. Masked pixels are {how}.")},
        {"title": "Where the evidence lies", "text": (
            f"Each image's evidence (the region its mask {'keeps' if keep else 'removes'}) is summed on a {g} grid of the input and scaled to "
            "sum to 1; a class's evidence map is the mean over the images predicted as that class. A candidate cue is a "
            f"group of neighbouring cells holding at least {factor} times a uniform share of the class's mean evidence in which "
            f"at least {_pct(cons) if isinstance(cons, float) else 'the configured share'} of the images put at least twice a "
            f"uniform share (a cue need not be in every image); the {_num(limit, 'few')} largest per class are tested. With subject boxes in the probe, the off-subject share is the "
            "part of the evidence that lies outside the subject's box (or mask).")},
        {"title": "Confirmation", "text": (
            "Each candidate is tested by intervention. The region is removed (filled with the mean colour of a ring "
            "around it) from the images predicted as its class whose own evidence lies there, and transplanted into images predicted "
            "as other classes; the same is done with a control box of the same size where the mean evidence is lowest. "
            f"A cue is confirmed when its removal or its transplant flips at least {rate} of the predictions, at least "
            f"{margin} more than the control does, and the exact one-sided McNemar test of cue flips against control "
            f"flips on the same images (both arms pooled), Holm-adjusted across all tested regions, has p < {alpha}. A confirmed candidate that lies mostly on the "
            "subject (less than half of its evidence off the subject box) is the model using the subject, not a "
            "finding; that can only be known when the probe has subject boxes.")},
        {"title": "Deletion score", "text": (
            "How well the masks explain the predictions: the area under the predicted class's probability as pixels "
            "are removed, most evident first. Lower is better; it is compared with the same area for a random order "
            "of the pixels.")},
        {"title": "Masks that did not converge", "text": (
            "A mask has not converged when removing its region leaves the class probability above the larger of "
            "half its original value and chance. The area term stops a mask from growing beyond a small region, so "
            "a high share means the model's evidence for those images is spread out: no small region alone decides "
            "the prediction. Those masks still count in the evidence maps; a cue is only reported after its own test.")},
    ]


def _spurious_limitations(check: dict[str, Any]) -> list[str]:
    n = as_dict(check.get("params")).get("n_images")
    out = ["Spurious cues: only the regions the masks highlight are tested, so a cue the masks never highlight is not "
           "found; a probe without subject boxes cannot tell a cue on the subject from one off it." +
           (f" The masks were learned for a sample of {_num(n)} images." if isinstance(n, int) else "")]
    if dig(check, "metrics", "overall", "off_subject_share", "reason"):
        out.append("This probe has no subject boxes: the spurious check could not say whether its evidence lies on the "
                   "subject or off it.")
    return out


def _count(x: Any) -> str | None:
    """A positive whole number from the parameters as text ("32"), else None."""
    return f"{x:,}" if isinstance(x, int) and not isinstance(x, bool) and x > 0 else None


def _ex_methods(params: dict[str, Any]) -> list[str]:
    """A sentence per attribution method the run asked for, with its settings from ``params``."""
    steps, samples = _count(params.get("ig_steps")), _count(params.get("nt_samples"))
    stdev = params.get("nt_stdev")
    window, stride = _count(params.get("occlusion_window")), _count(params.get("occlusion_stride"))
    layer = params.get("layer")
    mask = _count(params.get("mask_steps"))
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


def _explanations(params: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the explanations check, read from its parameters."""
    n, n_sanity = _count(params.get("n_images")), _count(params.get("n_sanity"))
    op = str(params.get("operator") or "")
    how = _OPERATORS.get(op, f"perturbed by the “{short(op, 40)}” operator" if op else "replaced by the run's perturbation")
    steps, stages = _count(params.get("curve_steps")), _count(params.get("sanity_stages"))
    conf = params.get("confidence")
    interval = f"a {_pct(conf)} bootstrap interval" if metric_value(conf) is not None else "a bootstrap interval"
    threshold = params.get("sanity_threshold")
    threshold = fmt_plain(threshold) if metric_value(threshold) is not None else "the configured threshold"
    min_n = _count(params.get("min_group_size"))
    cm_steps = _count(params.get("class_model_steps"))
    least = params.get("min_difference")
    finding = (f" A difference of at least {fmt_plain(least)} whose interval lies above 0 is reported as a finding."
               if metric_value(least) is not None else "")
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
            "box, when the probe has boxes) are computed per group of each sensitive attribute. For each attribute, the "
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


def _explanations_limitations(check: dict[str, Any]) -> list[str]:
    params = as_dict(check.get("params"))
    n, n_sanity = _count(params.get("n_images")), _count(params.get("n_sanity"))
    text = ("Explanations: an attribution map is one method's account of the model, not the model's reasoning; "
            "deletion and insertion measure faithfulness with one way of removing pixels and can rank the methods "
            "differently with another.")
    if n:
        text += f" The maps were computed for a sample of {n} images"
        text += f", the sanity check on {n_sanity}." if n_sanity else "."
    return [text]


def _first(settings: list[dict[str, Any]], attack: str, key: str) -> Any:
    """``key`` of the first recorded setting of ``attack`` that has it (e.g. PGD's steps), else None."""
    return next((s[key] for s in settings if s.get("attack") == attack and key in s), None)


def _eps_list(x: Any, linf: bool) -> str:
    values = [v for v in as_list(x) if metric_value(v) is not None]
    if not values:
        return "the configured grid"
    return ", ".join(f"{round(v * 255)}/255" if linf and abs(v * 255 - round(v * 255)) < 1e-6 and 0 < v < 1
                     else fmt_plain(v) for v in values[:16])


def _attacks(params: dict[str, Any], overall: dict[str, Any]) -> list[dict[str, str]]:
    """(title, text) paragraphs for the attacks check, read from its parameters and recorded settings."""
    settings = [as_dict(s) for s in as_list(overall.get("settings"))]
    steps = params.get("steps") if isinstance(params.get("steps"), int) else _first(settings, "pgd", "steps")
    restarts = params.get("restarts") if isinstance(params.get("restarts"), int) else _first(settings, "pgd", "restarts")
    start = _first(settings, "pgd", "random_start")
    ref = params.get("reference_eps")
    ref = " " + _eps_list([ref], True) if metric_value(ref) is not None else ""
    n_bb, queries = params.get("n_blackbox"), params.get("max_queries")
    l2_ref = dig(overall, "blackbox", "hopskipjump", "eps")
    l2_ref = f" ({fmt_plain(l2_ref)})" if metric_value(l2_ref) is not None else ""
    out = [
        {"title": "White-box attacks", "text": (
            f"{_num(params.get('n_images'))} images are sampled uniformly from the probe (seeded) and attacked with full "
            "access to the model's gradients: FGSM (one signed-gradient step of size eps) and PGD (Madry et al., "
            f"projected gradient descent{' from a random start' if start is not False else ''}, {_num(steps)} steps of "
            f"size 2.5·eps/steps, {_num(restarts)} restart(s), the worst result per image kept). Perturbations are in "
            f"[0, 1] pixel units, before the model's normalisation: L∞ eps {_eps_list(params.get('eps_linf'), True)}; "
            f"L2 eps {_eps_list(params.get('eps_l2'), False)} (the norm of the perturbation over all pixels). Robust "
            "accuracy is the share of images still classified correctly; the attack success rate is the share of the "
            "correctly classified images that the attack flipped.")},
        {"title": "Minimal perturbation", "text": (
            "For each correctly classified image, the smallest L∞ eps at which PGD flips it is found by bisection to "
            "a tolerance of 1/255; the median over the images is reported with a bootstrap interval, and images not "
            "flipped within the search range are counted.")},
        {"title": "Robust accuracy by group", "text": (
            f"Robust accuracy is compared between groups and intersections at the reference eps{ref} (PGD, L∞) with the "
            "same bootstrap intervals, permutation tests, corrections for multiple comparisons and minimum group size as "
            "the group metrics.")},
    ]
    if params.get("blackbox") is not False:
        out.append({"title": "Black-box and transfer attacks", "text": (
            f"On a subsample of {_num(n_bb)} images, attacks that see only the model's answers: Square (L∞ at the "
            f"reference eps, at most {_num(queries, 'the configured number of')} queries per image) and HopSkipJump (L2, "
            "which looks for the smallest perturbation that flips an image; it counts as a success when that is within "
            f"the L2 reference eps{l2_ref}), both from the Adversarial Robustness Toolbox (ART); every query is counted by the "
            "auditor. A transfer attack trains a small substitute CNN on the model's own answers for a pool of "
            f"{_num(params.get('pool'), 'other')} other probe images, attacks the substitute with PGD and replays the "
            "adversarial images on the model.")})
    out.append({"title": "Gradient masking", "text": (
        "A model can look robust because its gradients mislead the attacks rather than because it is robust. The "
        "check looks for the signs: input gradients that are zero, not finite or missing; outputs that change between "
        "identical calls; FGSM beating PGD; a black-box attack beating the white-box one; accuracy not falling as eps "
        "grows; an unbounded attack (eps 1, free to change every pixel) not bringing accuracy to about 0. Any one of "
        "them marks the robustness result unreliable.")})
    return out


def _attacks_limitations(check: dict[str, Any]) -> list[str]:
    params = as_dict(check.get("params"))
    n, n_bb = params.get("n_images"), params.get("n_blackbox")
    text = ("Adversarial robustness: robust accuracy is an upper bound. It is what these attacks achieved, and a "
            "stronger or adaptive attack could lower it further; a model flagged for gradient masking may be much less "
            "robust than its numbers say.")
    if isinstance(n, int) and not isinstance(n, bool):
        text += f" The attacks ran on a sample of {_num(n)} images, so small groups carry wide intervals."
    if params.get("blackbox") is not False:
        text += (f" The black-box attacks ran on a subsample of {_num(n_bb)} images." if isinstance(n_bb, int) and
                 not isinstance(n_bb, bool) else " The black-box attacks ran on a subsample of the images.")
    return [text]


def _limitations(results: dict[str, Any]) -> list[str]:
    probe = as_dict(results.get("probe"))
    out = []
    n = probe.get("n")
    src = short(probe.get("source") or "the probe", 200)
    out.append(f"The numbers describe this model on {src}" + (f" ({_num(n, '?')} images)" if n is not None else "") +
               ". They say nothing about images unlike these: other cameras, lighting, ages, or populations the probe "
               "does not contain. A pass is evidence about this probe, not a proof of fairness.")
    if probe.get("format") == "synth" or str(probe.get("source") or "").startswith("synth:"):
        out.append("The probe is synthetic: its images are generated, with planted attributes and cues. It shows how the "
                   "model reacts to those planted differences; it is not a measurement on real faces.")
    out.append("Group membership comes from the probe's annotations (gender, age, race as recorded there). Such labels can "
               "be wrong, coarse or imposed (e.g. binary gender); the audit inherits their errors and categories.")
    out.append("Group metrics measure differences in outcomes, not their causes. Some fairness criteria cannot all hold at "
               "once when base rates differ between groups (e.g. equal selection rates and equal error rates), so the "
               "policy decides which ones matter.")
    skipped = probe.get("n_skipped")
    sp = as_dict(dig(results, "checks", "spurious"))
    if sp and sp.get("status") != "error":
        out += _spurious_limitations(sp)
    at = as_dict(dig(results, "checks", "attacks"))
    if at and at.get("status") != "error":
        out += _attacks_limitations(at)
    ex = as_dict(dig(results, "checks", "explanations"))
    if ex and ex.get("status") != "error":
        out += _explanations_limitations(ex)
    if isinstance(skipped, int) and skipped > 0:
        out.append(f"{skipped} probe image(s) could not be read and were left out.")
    errored = [short(n) for n, c in as_dict(results.get("checks")).items() if as_dict(c).get("status") == "error"]
    if errored:
        out.append("Checks that errored measured nothing: " + ", ".join(errored) + ".")
    return out


def methodology(results: dict[str, Any]) -> dict[str, Any]:
    """Paragraphs for the Methodology and limitations section."""
    gm = as_dict(dig(results, "checks", "group_metrics"))
    sp = as_dict(dig(results, "checks", "spurious"))
    at = as_dict(dig(results, "checks", "attacks"))
    ex = as_dict(dig(results, "checks", "explanations"))
    params = as_dict(gm.get("params"))
    policy = as_dict(results.get("policy"))
    verdict = [
        ("A blocker clause that fails makes the verdict FAIL; otherwise a blocker clause without enough data "
         "(a group under the minimum size, an errored check) makes it INCONCLUSIVE; otherwise it is PASS. Warning "
         "clauses are reported but never change the verdict."),
        ("A clause with “whole interval” passes only when its value and its entire interval clear the threshold; "
         "otherwise the point estimate decides."),
    ]
    if any(as_dict(c).get("kind") == "regression" for c in as_list(policy.get("clauses"))) or policy.get("baseline"):
        verdict.append("Regression clauses compare each value with the same value in a baseline audit's results.json; "
                       "with “if significant”, only a worsening beyond the allowance that is significant in a one-sided "
                       "z-test (standard errors read from the two intervals) fails.")
    return {"group_metrics": _group_metrics(params) if gm else [], "verdict": verdict,
            "spurious": _spurious(as_dict(sp.get("params"))) if sp and sp.get("status") != "error" else [],
            "attacks": _attacks(as_dict(at.get("params")), as_dict(dig(at, "metrics", "overall")))
            if at and at.get("status") != "error" else [],
            "explanations": _explanations(as_dict(ex.get("params"))) if ex and ex.get("status") != "error" else [],
            "limitations": _limitations(results)}
