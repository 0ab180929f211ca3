"""What the audit took the model to be, as table rows: its classes, normalisation and input size, each
with where it came from (declared by a flag, the spec, the exported program or the weights, or assumed)
and what the preflight found; and the probe images that were resized to the input size.
Plain text only (each format escapes it).
"""
from __future__ import annotations

from typing import Any

from auditor.report._format import as_dict, as_list, dig, fmt_p, fmt_plain, short

__all__ = ["assumption_rows", "resized_rows"]

_FACTS = {"classes": "Output classes", "normalisation": "Normalisation", "input_size": "Input size"}
_DECLARERS = {"flag": "a command-line flag", "spec": "the model spec", "export": "the exported program",
              "weights": "the weights' metadata"}


def _fact_value(key: str, value: Any) -> str:
    if key == "classes":
        return ", ".join(f"{i} = {short(c, 30)}" for i, c in enumerate(as_list(value))) or "not recorded"
    if key == "normalisation":
        v = as_dict(value)
        if v.get("mean") is None:
            return "none (pixels in [0, 1])"
        return f"mean {fmt_plain(as_list(v.get('mean')))}, std {fmt_plain(as_list(v.get('std')))}"
    size = as_list(value)
    return f"{size[0]} x {size[1]} px" if len(size) == 2 else "not recorded"


def _fact_how(key: str, entry: dict[str, Any]) -> str:
    """Where the fact came from and what the preflight found, in one phrase."""
    by, verdict, ev = entry.get("declared_by"), entry.get("verdict"), as_dict(entry.get("evidence"))
    if by:
        how = f"declared by {_DECLARERS.get(by, short(by, 30))}"
        if key == "classes" and ev.get("verdict") == "contradicted":
            how += (f"; the labels agree better with {', '.join(short(c, 30) for c in as_list(ev.get('alternative_classes')))}"
                    f" ({fmt_plain(ev.get('alternative_agreement'))} vs {fmt_plain(ev.get('balanced_agreement'))}), "
                    "kept as declared")
        return how
    assumed = short(entry.get("assumed"), 80)
    how = "assumed" if not assumed or assumed == _fact_value(key, entry.get("value")) else f"assumed ({assumed})"
    if key == "classes" and ev:
        rival = fmt_plain(ev.get("alternative_agreement"))
        how += (f", {verdict}: balanced agreement with the labels {fmt_plain(ev.get('balanced_agreement'))}, "
                f"best other order {rival}, p {fmt_p(ev.get('p_value'))}, n = {ev.get('n')}")
    elif ev:
        cands = as_list(ev.get("candidates"))
        rivals = [as_dict(c) for c in cands[1:]]
        best = max((as_dict(c).get("best_agreement") for c in rivals if isinstance(as_dict(c).get("best_agreement"), float)),
                   default=None)
        how += (f", {verdict}: balanced agreement {fmt_plain(as_dict(cands[0]).get('balanced_agreement') if cands else None)}"
                f" against {fmt_plain(best)} for the best alternative, n = {ev.get('n')}")
    elif verdict:
        how += f", {verdict}"
    return how


def assumption_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """What the audit took the model's classes, normalisation and input size to be, and on what ground
    (declared, or assumed and then verified or left undecided by the preflight): one row per fact."""
    rows = []
    for key, label in _FACTS.items():
        entry = as_dict(as_dict(dig(results, "model", "assumptions")).get(key))
        if entry:
            rows.append({"fact": label, "value": _fact_value(key, entry.get("value")), "how": _fact_how(key, entry),
                         "verdict": str(entry.get("verdict") or "")})
    return rows + resized_rows(results)


def resized_rows(results: dict[str, Any]) -> list[dict[str, str]]:
    """One row, when probe images of another size than the input size were resized: how many, from which sizes, how."""
    probe = as_dict(results.get("probe"))
    resized = as_dict(probe.get("resized"))
    n = resized.get("n")
    if not isinstance(n, int) or n <= 0:
        return []
    total, skipped = probe.get("n"), probe.get("n_skipped") or 0
    read = total - skipped if isinstance(total, int) and isinstance(skipped, int) else None
    to = as_list(resized.get("to"))
    sizes = ", ".join(f"{short(k, 20)} ({v})" for k, v in list(as_dict(resized.get("from")).items())[:5])
    target = f"{to[0]} x {to[1]} px" if len(to) == 2 else "the input size"
    return [{"fact": "Resized images", "value": f"{n} of {read} probe images" if isinstance(read, int) else f"{n} probe images",
             "how": f"not {target}: {sizes or 'sizes not recorded'} (W x H); {short(resized.get('method') or 'resized', 80)}",
             "verdict": "resized"}]
