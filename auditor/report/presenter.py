"""How each check is presented: one `Presenter` per check, keyed by the check's name, registered with
`@register_presenter` (a duplicate name is an error), found with `get_presenter`.

A presenter owns everything the outputs show of its check's part of ``results.json``: its title and the
labels and directions of its metrics; the HTML section (a plain-values view and the Jinja macro that draws
it, from ``reports_templates`` or from the presenter's own template text or file); its Markdown lines; its
JUnit headline; its comparison rows (before/after) and flags; its methodology paragraphs and limitations;
and its findings for page 1. The renderers iterate over the checks in ``results.json`` and dispatch here,
so adding a check's presentation is one module. A check without a presenter gets `GenericPresenter`: the
generic tree in the report and a row per numeric overall metric in a comparison.

    >>> @register_presenter
    ... class Toy(Presenter):
    ...     name, title = "toy", "Toy check"
    ...     template = "{% macro section(v) %}<p>{{ v.mean|num }}</p>{% endmacro %}"
    ...     def view(self, check, figures):
    ...         return {"mean": check.get("metrics", {}).get("mean")}

The built-in presenters live in `auditor.report.sections` (one module per check), registered when that
package is imported (``import auditor.report`` does). Every method gets plain dicts that may be partial or
hostile and must not raise; returned text is plain (each output escapes it).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from auditor.errors import InternalError
from auditor.report._format import metric_text
from auditor.report._registry import REGISTRY as _REGISTRY
from auditor.report._registry import metric_direction, presenter_label
from auditor.report._rows import add_row, higher_is_better, keys_of, metric_row, row_label

__all__ = [
    "GenericPresenter",
    "Presenter",
    "get_presenter",
    "metric_direction",
    "ordered_presenters",
    "presenter_label",
    "presenter_names",
    "presenter_template",
    "ran",
    "register_presenter",
    "unregister_presenter",
]

log = logging.getLogger(__name__)

TEMPLATE_PREFIX = "presenters/"
"""Template names under which a presenter's own template text or file is loaded (``presenters/<name>.html.j2``)."""

P = TypeVar("P", bound="type[Presenter]")


class Presenter:
    """The presentation of one check (see the module docstring). Subclasses set ``name`` (the check's) and
    override what they show; every default shows nothing, so a presenter only writes what its check has."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    """The section's title in a comparison ("Group fairness"); the check's name when empty."""
    order: ClassVar[int] = 100
    """Where the check's parts come in the Markdown, methodology and page-1 findings (lowest first)."""
    compare_order: ClassVar[int | None] = None
    """Where its section comes in a comparison; ``order`` when None."""
    labels: ClassVar[Mapping[str, str]] = {}
    """Comparison labels of the check's metrics, by key."""
    directions: ClassVar[Mapping[str, bool]] = {}
    """Whether a larger value is better (True) or worse (False), by metric key."""
    template_name: ClassVar[str | None] = None
    """A template of ``reports_templates`` that defines `macro`."""
    template: ClassVar[str | None] = None
    """Jinja text that defines `macro` (for a presenter outside the package)."""
    template_file: ClassVar[str | os.PathLike[str] | None] = None
    """A Jinja file that defines `macro` (for a presenter outside the package)."""
    macro: ClassVar[str] = "section"
    """The macro that draws the section; called with the `view`."""
    method_title: ClassVar[str] = ""
    """The heading of its methodology paragraphs ("How spurious cues are found")."""
    accuracy_key: ClassVar[str | None] = None
    """A comparison row key that can head a comparison as its accuracy cost, if any."""
    accuracy_what: ClassVar[str] = "overall accuracy"
    """What that row measures, in the accuracy-cost headline."""
    flag_titles: ClassVar[tuple[str, ...]] = ()
    """Titles of its comparison flags: our own text, shown unescaped in Markdown."""

    # -- the HTML report ------------------------------------------------------------------------------

    def section_template(self) -> str | None:
        """The name the shared Jinja environment loads the section's macro from; None: no own section."""
        if self.template_name:
            return self.template_name
        if self.template is not None or self.template_file is not None:
            return f"{TEMPLATE_PREFIX}{self.name}.html.j2"
        return None

    def template_source(self) -> str | None:
        """The presenter's own template text (``template``, or ``template_file`` read), or None."""
        if self.template is not None:
            return self.template
        if self.template_file is not None:
            return Path(self.template_file).read_text(encoding="utf-8")
        return None

    def view(self, check: dict[str, Any], figures: list[dict[str, str]]) -> dict[str, Any] | None:
        """What the section's macro shows (plain values), or None for the generic tree. ``figures``: the
        check's embeddable figures. Not called for a check whose status is ``error``."""
        return None

    def figures_left(self, view: dict[str, Any], figures: list[dict[str, str]]) -> list[dict[str, str]]:
        """The figures shown at the end of the section (those the view did not place)."""
        return figures

    # -- text outputs ----------------------------------------------------------------------------------

    def markdown(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        """The check's lines of the Markdown summary (made inert with `auditor.report._markdown.md`)."""
        return []

    def junit(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        """Headline lines for the check's JUnit testcase output ("overall accuracy: 0.870 [..]")."""
        return []

    def methodology(self, check: dict[str, Any], results: dict[str, Any]) -> list[dict[str, str]]:
        """``{"title", "text"}`` paragraphs on how the check's numbers were computed, under `method_title`
        (asked only of a check that ran: see `ran`)."""
        return []

    def limitations(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        """Sentences for "What this audit can and cannot say" (asked only of a check that ran)."""
        return []

    def findings(self, check: dict[str, Any], results: dict[str, Any]) -> list[dict[str, Any]]:
        """Page-1 blocks ``{"title", "lines", "more", "empty_title", "empty"}``: a heading and its sentences
        (``more``: a line after them), or when there are none, ``empty_title`` and ``empty`` (if set)."""
        return []

    def notes(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        """Page-1 "Also note" sentences."""
        return []

    def clause_hint(self, check: dict[str, Any], results: dict[str, Any], clause: dict[str, Any]) -> str:
        """What would decide an undecided clause on this check's metrics (" To decide it: ..."), or ""."""
        return ""

    # -- comparisons ----------------------------------------------------------------------------------

    def compare_rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        """Comparison rows (`auditor.report._rows.metric_row`) from the check's entry in each results."""
        return []

    def compare_flags(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Flags ``{"id", "severity", "title", "message", "evidence"}`` read from all the comparison's rows."""
        return []

    @property
    def heading(self) -> str:
        """The section's title, the check's name when the presenter has none."""
        return self.title or self.name


class GenericPresenter(Presenter):
    """The presenter of a check that has none: the report's generic tree, a row per numeric overall metric
    in a comparison and its overall numbers in JUnit."""

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]  # an instance per unknown check

    def junit(self, check: dict[str, Any], results: dict[str, Any]) -> list[str]:
        overall = _overall(check)
        return [f"{k}: {metric_text(v)}" for k, v in list(overall.items())[:20] if _numeric(v)]

    def compare_rows(self, before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
        ob, oa = _overall(before), _overall(after)
        rows: list[dict[str, Any]] = []
        for key in keys_of(ob, oa):
            bx, ax = ob.get(key), oa.get(key)
            if _numeric(bx) or _numeric(ax):
                add_row(rows, metric_row(self.name, f"{self.name}.overall.{key}", row_label(key), bx if _numeric(bx) else None,
                                         ax if _numeric(ax) else None, higher_is_better(key), scope="overall", metric=key))
        return rows


def _overall(check: Any) -> dict[str, Any]:
    metrics = check.get("metrics") if isinstance(check, dict) else None
    overall = metrics.get("overall") if isinstance(metrics, dict) else None
    return overall if isinstance(overall, dict) else {}


def _numeric(x: Any) -> bool:
    v = x.get("value") if isinstance(x, dict) else x
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def ran(check: Any) -> bool:
    """Whether ``check`` (a results.json check entry) is there and did not end in an error."""
    return bool(check) and isinstance(check, dict) and check.get("status") != "error"


def register_presenter(cls: P) -> P:
    """Class decorator: register a `Presenter` subclass under its ``name``; a duplicate name is an error."""
    name = getattr(cls, "name", None)
    if not name or not isinstance(name, str):
        raise InternalError(f"presenter class {cls.__name__} needs a string class attribute 'name' (its check's name)")
    if name in _REGISTRY and type(_REGISTRY[name]) is not cls:
        raise InternalError(f"a presenter for check {name!r} is already registered ({type(_REGISTRY[name]).__module__}); "
                            "unregister it first or pick another name")
    _REGISTRY[name] = cls()
    return cls


def unregister_presenter(name: str) -> None:
    """Forget the presenter of check ``name`` (nothing happens when there is none)."""
    _REGISTRY.pop(name, None)


def get_presenter(name: str) -> Presenter:
    """The presenter registered for check ``name``, or a `GenericPresenter` for it."""
    return _REGISTRY.get(name) or GenericPresenter(str(name))


def presenter_names() -> list[str]:
    """Names of the checks that have a presenter, in presentation order."""
    return [p.name for p in ordered_presenters()]


def ordered_presenters(names: Any = None, *, compare: bool = False) -> list[Presenter]:
    """The presenters of ``names`` (all registered ones when None), sorted by ``order`` (``compare_order``
    for a comparison), ties in the given order."""
    chosen = list(_REGISTRY.values()) if names is None else [get_presenter(str(n)) for n in names]

    def rank(p: Presenter) -> int:
        return p.compare_order if compare and p.compare_order is not None else p.order

    return sorted(chosen, key=rank)


def presenter_template(name: str) -> str | None:
    """The source of template ``presenters/<check>.html.j2`` (a presenter's own text or file), else None."""
    if not name.startswith(TEMPLATE_PREFIX) or not name.endswith(".html.j2"):
        return None
    p = _REGISTRY.get(name[len(TEMPLATE_PREFIX):-len(".html.j2")])
    return p.template_source() if p is not None else None
