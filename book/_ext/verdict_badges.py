"""Sphinx extension: every verdict of the claims ledger as a coloured badge linking to its entry.

The book's source folder holds ``_book.json`` (written by :mod:`yolov9lite.cli.book`): every claim with
its id, verdict, the paper's words and its anchor on the Results page. After Sphinx resolved a
page, a bold verdict word (``**supports**``, as ``yolov9lite.study.claims`` writes it in ledger tables
and sentences) becomes a badge when the claim it belongs to can be named: a claim id in the same
table row, else the paper's words (and its metric, where claims share words) in the same
paragraph. Table rows that name a claim get the claim's anchor as their id, so the Results page's
rows are the link targets. Verdicts are whatever
the ledger holds (a new one, e.g. "control failed", gets a badge of its own colour class).

It also copies MathJax 3 from the ``sphinx-mathjax-offline`` wheel into ``_static/mathjax`` (only
what the CHTML output needs), so formulas render without a network.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from docutils import nodes

RESULTS_DOC = "results"
BUILTIN_VERDICTS = ("supports", "contradicts", "inconclusive")
MATHJAX_PARTS = ("tex-chtml.js", "input/tex/extensions", "output/chtml/fonts/woff-v2",
                 "a11y/assistive-mml.js", "ui")


def anchor(claim_id: str) -> str:
    """A claim's HTML id on the Results page: ``05.pgi_lowers_loss`` -> ``claim-05-pgi-lowers-loss``.
    """
    return "claim-" + re.sub(r"[^a-z0-9]+", "-", claim_id.lower()).strip("-")


def verdict_class(verdict: str) -> str:
    return "verdict-" + re.sub(r"[^a-z0-9]+", "-", verdict.lower()).strip("-")


def _load(app) -> None:
    path = Path(app.srcdir) / "_book.json"
    data = json.loads(path.read_text()) if path.exists() else {"claims": []}
    app.yolov9lite_claims = {c["id"]: c for c in data["claims"]}
    app.yolov9lite_verdicts = set(BUILTIN_VERDICTS) | {c["verdict"] for c in data["claims"]}


def _row_claim(node, claims: dict):
    row = node.parent
    while row is not None and not isinstance(row, nodes.row):
        row = row.parent
    if row is None:
        return None, None
    for lit in row.findall(nodes.literal):
        if lit.astext() in claims:
            return claims[lit.astext()], row
    return None, row


def _paragraph_claim(node, claims: dict, docname: str):
    para = node.parent
    while para is not None and not isinstance(para, (nodes.paragraph, nodes.list_item)):
        para = para.parent
    if para is None:
        return None
    text = " ".join(para.astext().split())
    stem = docname.rsplit("/", 1)[-1]
    hits = [c for c in claims.values()
            if c["notebook"] == stem and " ".join(c["paper"].split()) in text]
    if len(hits) > 1:  # claims that quote the same words of the paper: the metric tells them apart
        hits = [c for c in hits if " ".join(c.get("metric", "").split()) in text]
    return hits[0] if len(hits) == 1 else None


def verdict_first(doctree) -> None:
    """A ledger table as notebooks display it (``claims_table``: verdict last) gets its verdict
    column moved to the front, so the verdict never falls off a narrow page; it scrolls with the
    ``ledger-table`` style (first column sticky)."""
    for tgroup in list(doctree.findall(nodes.tgroup)):
        rows = list(tgroup.findall(nodes.row))
        head = [e.astext().strip() for e in rows[0].children] if rows else []
        if len(head) < 2 or head[-1] != "verdict":
            continue
        for row in rows:
            last = row.children[-1]
            row.remove(last)
            row.insert(0, last)
        specs = [c for c in tgroup.children if isinstance(c, nodes.colspec)]
        if specs:
            tgroup.remove(specs[-1])
            tgroup.insert(0, specs[-1])
        tgroup.parent["classes"].append("ledger-table")


def make_badges(app, doctree, docname: str) -> None:
    claims, verdicts = app.yolov9lite_claims, app.yolov9lite_verdicts
    verdict_first(doctree)
    results_uri = app.builder.get_relative_uri(docname, RESULTS_DOC)
    if docname == RESULTS_DOC:
        results_uri = ""
    for strong in list(doctree.findall(nodes.strong)):
        verdict = strong.astext().strip()
        if verdict not in verdicts:
            continue
        claim, row = _row_claim(strong, claims)
        if claim is None and row is None:
            claim = _paragraph_claim(strong, claims, docname)
        if claim is None:
            continue  # a bold word that names no claim stays a bold word
        if row is not None and docname == RESULTS_DOC and anchor(claim["id"]) not in row["ids"]:
            row["ids"].append(anchor(claim["id"]))
        badge = nodes.reference("", verdict, internal=True,
                                refuri=f"{results_uri}#{anchor(claim['id'])}",
                                reftitle=f"{claim['id']}: {verdict} (ledger entry)",
                                classes=["verdict-badge", verdict_class(verdict)])
        badge["yolov9lite-claim"] = claim["id"]
        strong.replace_self(badge)


def copy_mathjax(app, exc) -> None:
    if exc is not None or app.builder.format != "html":
        return
    import importlib.util

    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    if spec is None or spec.origin is None:
        raise RuntimeError("the book needs sphinx-mathjax-offline (pip install -e '.[book]')")
    src = Path(spec.origin).parent / "static" / "mathjax"
    dst = Path(app.outdir) / "_static" / "mathjax"
    for part in MATHJAX_PARTS:
        if (src / part).is_dir():
            shutil.copytree(src / part, dst / part, dirs_exist_ok=True)
        else:
            (dst / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / part, dst / part)


def setup(app):
    app.connect("builder-inited", _load)
    app.connect("doctree-resolved", make_badges)
    app.connect("build-finished", copy_mathjax)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
