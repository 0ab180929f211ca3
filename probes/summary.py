"""What a probe holds, for ``auditor probe check PROBE``: counts per class and per group, as a dict and as text."""
from __future__ import annotations

from typing import Any

from probes.base import Probe

__all__ = ["summarize", "format_summary"]

_MAX_UNPARSED_SHOWN = 5


def summarize(probe: Probe) -> dict[str, Any]:
    """A JSON-ready summary: source, format, n, target, classes, per-class and per-group counts, n_unparsed."""
    counts = probe.table["label"].value_counts()
    unparsed = list(probe.meta.get("unparsed", []))
    return {
        "source": probe.source,
        "format": probe.format,
        "n": len(probe),
        "target": probe.target,
        "classes": list(probe.classes),
        "class_counts": {name: int(counts.get(k, 0)) for k, name in enumerate(probe.classes)},
        "attributes": probe.group_counts(),
        "n_unparsed": int(probe.meta.get("n_unparsed", len(unparsed))),
        "unparsed": unparsed[:_MAX_UNPARSED_SHOWN],
    }


def format_summary(summary: dict[str, Any]) -> str:
    """Render `summarize`'s dict as a plain-text table (counts and shares per class and per group)."""
    n = int(summary["n"])
    lines = [f"probe   {summary['source']}", f"format  {summary['format']}", f"images  {n}", ""]
    lines += _table(f"target: {summary['target']}", "class", summary["class_counts"], n)
    for attr, groups in summary["attributes"].items():
        lines += [""] + _table(f"attribute: {attr}", "group", groups, n)
    if summary.get("n_unparsed"):
        shown = ", ".join(summary.get("unparsed", []))
        lines += ["", f"skipped {summary['n_unparsed']} file(s) whose names could not be parsed" + (f": {shown}" if shown else "")]
    return "\n".join(lines)


def _table(title: str, header: str, counts: dict[str, int], n: int) -> list[str]:
    width = max([len(str(k)) for k in counts] + [len(header)])
    rows = [title, f"  {header:<{width}}  {'n':>7}  {'share':>6}"]
    for name, count in counts.items():
        share = f"{100.0 * count / n:.1f}%" if n else "-"
        rows.append(f"  {str(name):<{width}}  {count:>7}  {share:>6}")
    return rows
