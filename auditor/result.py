"""`AuditResult`: what `auditor.audit` returns to a notebook or a script: the verdict, the exit code a
CI gate would get, per-group tables as pandas DataFrames (like fairlearn's ``MetricFrame.by_group``),
the results as JSON, and reports rendered on demand."""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from auditor.errors import UsageError
from auditor.outdir import render_outputs

__all__ = ["AuditResult"]

_COLUMNS = ("n", "value", "ci_low", "ci_high", "p_adjusted", "significant")


@dataclass
class AuditResult:
    """One finished audit. ``results`` is the results.json document; ``paths`` the files written (empty
    when the audit was run without an output folder)."""

    results: dict[str, Any]
    exit_code: int
    paths: dict[str, Path] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """``pass``, ``fail`` or ``inconclusive`` (the policy's verdict)."""
        return str(self.results["policy"]["verdict"])

    @property
    def passed(self) -> bool:
        """Whether a CI gate would let the model through (exit code 0)."""
        return self.exit_code == 0

    @property
    def clauses(self) -> pd.DataFrame:
        """The policy's clauses: one row per clause entry with its value, interval, result and reason."""
        rows = [{"id": c["id"], "severity": c["severity"], "result": c["result"], "value": c.get("value"),
                 "op": c.get("op"), "threshold": c.get("threshold"), "ci": c.get("ci"), "reason": c.get("reason")}
                for c in self.results["policy"]["clauses"]]
        return pd.DataFrame(rows).set_index("id") if rows else pd.DataFrame()

    def metrics(self, check: str = "group_metrics") -> list[str]:
        """The per-group metrics ``check`` reported (what `by_group` accepts)."""
        found: dict[str, None] = {}
        for groups in self._by_group_node(check).values():
            for node in groups.values() if isinstance(groups, dict) else ():
                for key, value in node.items() if isinstance(node, dict) else ():
                    if isinstance(value, dict) and "value" in value:
                        found[key] = None
        return list(found)

    def by_group(self, metric: str = "accuracy", scope: str | None = None, *,
                 check: str = "group_metrics") -> pd.DataFrame:
        """``metric`` per group as a DataFrame with columns n, value, ci_low, ci_high, p_adjusted, significant.

        With ``scope`` (``"race"``, ``"gender+race"``) the index is the group; without, it is
        (scope, group) over every scope the check reported, attributes first.
        """
        node = self._by_group_node(check)
        scopes = [scope] if scope is not None else list(node)
        for s in scopes:
            if s not in node:
                close = difflib.get_close_matches(s, list(node), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise UsageError(f"scope {s!r} is not in {check}'s results; {hint}scopes: {', '.join(node) or 'none'}")
        known = self.metrics(check)
        if metric not in known:
            close = difflib.get_close_matches(metric, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(f"{check} reports no per-group metric {metric!r}; {hint}metrics: {', '.join(known)}")
        rows = []
        for s in scopes:
            for group, entry in node[s].items():
                m = entry.get(metric) if isinstance(entry, dict) else None
                m = m if isinstance(m, dict) else {}
                ci = m.get("ci") if isinstance(m.get("ci"), (list, tuple)) and len(m.get("ci") or ()) == 2 else (None, None)
                rows.append({"scope": s, "group": str(group), "n": entry.get("n") if isinstance(entry, dict) else None,
                             "value": m.get("value"), "ci_low": ci[0], "ci_high": ci[1],
                             "p_adjusted": m.get("p_adjusted"), "significant": m.get("significant")})
        frame = pd.DataFrame(rows, columns=["scope", "group", *_COLUMNS])
        if scope is not None:
            return frame.drop(columns="scope").set_index("group")
        return frame.set_index(["scope", "group"])

    def to_json(self, path: str | Path | None = None) -> str:
        """The results.json text; with ``path``, also written there atomically."""
        text = json.dumps(self.results, indent=2, sort_keys=False, allow_nan=False)
        if path is not None:
            from auditor.atomic import atomic_write_text

            atomic_write_text(path, text + "\n")
        return text

    def report(self, path: str | Path, formats: str | Sequence[str] = ("html",), *, force: bool = False) -> dict[str, Path]:
        """Write results.json and the reports in ``formats`` (html, pdf, md, junit) as an audit folder at ``path``.

        An existing audit folder is replaced only with ``force`` (as `auditor audit --force`)."""
        wanted = [f.strip() for f in formats.split(",") if f.strip()] if isinstance(formats, str) else list(formats)
        return render_outputs(self.results, Path(path), ["json", *[f for f in wanted or ["html"] if f != "json"]],
                              force=force)

    def summary(self) -> str:
        """The verdict line the CLI prints: the verdict, the policy, and why (failed, borderline, undecided and
        not-run clauses, checks the policy requires that were not run, checks with errors, skipped images)."""
        pol = self.results["policy"]
        clauses = pol["clauses"]

        def blockers(result: str, regression: bool | None = None) -> list[str]:
            return [c["id"] for c in clauses if c["result"] == result and c["severity"] == "blocker"
                    and (regression is None or (c.get("kind") == "regression") == regression)]

        not_run = [c for c in clauses if c["result"] == "not_run"]
        detail = []
        for label, ids in (("failed", blockers("fail", False)), ("regressed against baseline", blockers("fail", True)),
                           ("borderline (interval straddles the threshold)", blockers("borderline")),
                           ("insufficient data", blockers("insufficient_data"))):
            if ids:
                detail.append(f"{label}: {', '.join(ids)}")
        if pol.get("missing_required"):
            detail.append(f"policy requires {', '.join(pol['missing_required'])}, not run")
        if not_run:  # blockers by name, warnings counted
            left_out = list(dict.fromkeys(str(c["metric"]).split(".")[1] for c in not_run))
            named = [c["id"] for c in not_run if c["severity"] == "blocker"]
            n_warn = len(not_run) - len(named)
            named += [f"{n_warn} warning clause{'s' if n_warn > 1 else ''}"] if n_warn else []
            detail.append(f"not run: {', '.join(named)} [{', '.join(left_out)} not in --checks]")
        warned = [c["id"] for c in clauses if c["result"] == "fail" and c["severity"] != "blocker"]
        if warned:  # warnings never change the verdict, but the line says they were not met
            detail.append(f"warnings not met: {', '.join(warned)}")
        if pol.get("borderline_passes"):
            detail.append(f"passing only at the measured value (borderline): {', '.join(map(str, pol['borderline_passes']))}")
        errored = [n for n, c in self.results["checks"].items() if c["status"] != "ok"]
        if errored:
            detail.append(f"checks with errors: {', '.join(errored)}")
        n_skip = self.results["probe"].get("n_skipped")
        if n_skip:
            detail.append(f"{n_skip} unreadable images skipped")
        return f"{self.verdict.upper()}: policy {pol['name']}" + (f" ({'; '.join(detail)})" if detail else "")

    def __repr__(self) -> str:
        model = self.results.get("model", {}).get("name")
        return f"<AuditResult {self.verdict} model={model!r} exit_code={self.exit_code}>"

    def _repr_html_(self) -> str:
        return f"<b>{self.verdict.upper()}</b> &mdash; " + self.clauses.to_html(max_rows=40)

    def _by_group_node(self, check: str) -> dict[str, Any]:
        checks = self.results.get("checks", {})
        if check not in checks:
            raise UsageError(f"check {check!r} was not run in this audit; run it with checks=[{check!r}]")
        node = checks[check].get("by_group")
        if not isinstance(node, dict):
            reason = checks[check].get("error") or "it reported no per-group results"
            raise UsageError(f"check {check!r} has no per-group results ({reason})")
        return node
