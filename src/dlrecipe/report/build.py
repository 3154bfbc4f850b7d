"""Write a run's report: report/index.html with curves, evaluation plots, mistakes and Grad-CAM.

    python -m dlrecipe.report outputs/train/<date>/<time>      # (re)build it from the checkpoint

Runs after testing on rank 0 only, on the best checkpoint's weights, so it never slows the
training loop. Images also go to TensorBoard and W&B when those loggers are on.
"""

from __future__ import annotations

import html
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.loaders import to_float
from dlrecipe.extras import available, skipped
from dlrecipe.models.module import LitModel
from dlrecipe.predict import predict_batches
from dlrecipe.report import figures, inside, mistakes, page
from dlrecipe.report.header import Header, read_header
from dlrecipe.report.summary import RunSummary


def report_wanted(cfg: DictConfig, summary: RunSummary) -> bool:
    """report.enabled, except in a sweep trial or a K-fold fold unless report.in_trials_and_folds:
    there the report would multiply its cost by every trial and fold, for pages few open
    (the K-fold overview and the sweep's own summary stay; `python -m dlrecipe.report <dir>`
    builds any trial's or fold's report later)."""
    report = cfg.get("report")
    if not report or not report.get("enabled"):
        return False
    in_trial = (cfg.get("optuna") or {}).get("trial_number") is not None
    return bool(report.get("in_trials_and_folds")) or not (in_trial or summary.fold)


def write_report(run_dir: Path, model: LitModel, datamodule: DataModule, settings: dict[str, Any], loggers: list = ()) -> Path:  # fmt: skip
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("filter_patterns.png", "least_confident.png", "learning_curves.png"):
        (out / stale).unlink(missing_ok=True)  # a rebuild must not show an earlier build's figure
    info, fold = model.info, datamodule.fold
    stage, indices = ("test", fold.test) if len(fold.test) else ("validation", fold.val)
    raw = datamodule.raw_inputs(indices)
    model.eval()
    probs = predict_batches(
        model, datamodule, (raw[i : i + 512] for i in range(0, len(raw), 512))
    ).numpy()
    targets = datamodule.data.targets[torch.as_tensor(indices)].numpy()
    summary = _read_json(run_dir / "summary.json")
    head = read_header(run_dir, out)
    sections: list[tuple[str, str]] = [("Run", _run_facts(run_dir, summary, stage))]
    if (run_dir / "learning_curves.png").is_file():  # a copy: the folder is shared alone
        shutil.copyfile(run_dir / "learning_curves.png", out / "learning_curves.png")
        sections.append(("Learning curves", page.image("learning_curves.png", "learning curves")))
    sections += _evaluation(out, info, probs, targets, stage)
    losses = mistakes.per_sample_loss(probs, targets, info.task)
    k = int(settings.get("worst_k", 16))
    wrong, unsure = mistakes.split_by_correctness(probs, targets, losses, info.task, k)
    unsure = unsure[: max(1, k // 2)]  # the context for the mistakes, not a second gallery
    sections += _mistakes(out, info, raw, probs, targets, losses, wrong, unsure, datamodule)
    if info.is_image and inside.conv_layers(model):
        sections += _inside(out, model, datamodule, raw, probs, targets, wrong, unsure, settings)
    sections += _links(run_dir)
    title = f"dlrecipe report: {head.name}"
    index = page.write_page(out / "index.html", title, sections, _header_html(run_dir, head))
    _to_loggers(out, loggers)
    return index


def _header_html(run_dir: Path, head: Header) -> str:
    overrides = " ".join(page.code(o) for o in head.overrides) or "none (the defaults)"
    config = page.link(head.config, "config.yaml") if head.config else "not saved"
    lines = [f"run {page.code(run_dir.name)} · overrides: {overrides} · composed config: {config}"]
    lines += [html.escape(p) for p in head.problems]
    return "".join(f'<p class="header">{line}</p>' for line in lines)


def _run_facts(run_dir: Path, summary: dict, stage: str) -> str:
    metrics = {**summary.get("val_metrics", {}), **summary.get("test_metrics", {})}
    names = sorted({k.split("/", 1)[1] for k in metrics})
    rows = [
        {"metric": n, "validation": metrics.get(f"val/{n}"), "test": metrics.get(f"test/{n}")}
        for n in names
    ]
    facts = [f"task: {summary.get('task', '?')}", f"best epoch: {summary.get('best_epoch')} of {summary.get('epochs_run')}",
             f"parameters: {summary.get('params_total', 0):,}", f"plots below use the {stage} set"]  # fmt: skip
    return (
        page.table(rows)
        + page.note(" · ".join(facts))
        + "".join(page.note(n) for n in summary.get("notes", []))
    )


def _evaluation(
    out: Path, info, probs: np.ndarray, targets: np.ndarray, stage: str
) -> list[tuple[str, str]]:
    """The figures the task names (Task.report_figures), in its order."""
    sections: list[tuple[str, str]] = []
    for name in info.task_obj.report_figures:
        sections += EVALUATION_FIGURES[name](out, info, probs, targets)
    return sections


def _regression_figure(out: Path, info, probs: np.ndarray, targets: np.ndarray) -> list[tuple[str, str]]:  # fmt: skip
    figures.regression(targets, probs, out / "regression.png")
    return [("Predicted vs true", page.image("regression.png", "predicted vs true and residuals"))]


def _confusion(out: Path, info, probs: np.ndarray, targets: np.ndarray) -> list[tuple[str, str]]:
    predicted, names = info.task_obj.predicted_labels(probs), info.class_names
    figures.confusion(targets, predicted, names, out / "confusion_matrix.png")
    return [
        ("Confusion matrix", page.image("confusion_matrix.png", "confusion matrix")),
        (
            "Per-class precision, recall, F1",
            page.table(figures.per_class(targets, predicted, names)),
        ),
    ]


def _roc_pr(out: Path, info, probs: np.ndarray, targets: np.ndarray) -> list[tuple[str, str]]:
    figures.roc_pr(targets, probs, info.class_names, out / "roc_pr.png")
    return [("ROC and precision-recall", page.image("roc_pr.png", "ROC and precision-recall curves"))]  # fmt: skip


def _calibration(out: Path, info, probs: np.ndarray, targets: np.ndarray) -> list[tuple[str, str]]:
    figures.calibration(targets, probs, out / "calibration.png")
    return [("Calibration", page.image("calibration.png", "reliability diagram"))]


# Figure name (as a task lists it in report_figures) -> the function drawing its sections.
EVALUATION_FIGURES = {
    "predicted_vs_true": _regression_figure,
    "confusion": _confusion,
    "roc_pr": _roc_pr,
    "calibration": _calibration,
}


def _label(info, probs: np.ndarray, target, i: int) -> tuple[str, str, float]:
    """(predicted label, true label, probability of the prediction) for sample position i."""
    return info.task_obj.label(probs, target, i, info.class_names)


def _mistakes(out, info, raw, probs, targets, losses, wrong, unsure, datamodule) -> list[tuple[str, str]]:  # fmt: skip
    regression = not info.task_obj.has_classes
    kinds = [
        ("worst_mistakes", wrong, f"Largest errors ({len(wrong)}, by squared error)" if regression
         else f"Worst mistakes ({len(wrong)} wrong predictions, highest loss first)"),
        ("least_confident", unsure, f"Correct but least confident ({len(unsure)}, highest loss first)"),
    ]  # fmt: skip
    sections = []
    for name, order, title in kinds:
        if not len(order):
            if name == "worst_mistakes":
                sections.append((title, page.note("no wrong prediction on this set")))
            continue
        if info.is_image:
            titles = []
            for i in order:
                pred, true, p = _label(info, probs, targets[i], i)
                conf = f" ({p:.2f})" if p == p else ""
                titles.append(f"pred {pred}{conf}\ntrue {true}\nloss {losses[i]:.2f}")
            images = to_float(raw[torch.as_tensor(order)]).numpy()
            mistakes.image_grid(images, titles, out / f"{name}.png")
            sections.append((title, page.image(f"{name}.png", title)))
        else:
            sections.append((title, _mistake_table(info, raw, probs, targets, losses, order, datamodule)))  # fmt: skip
    return sections


def _mistake_table(info, raw, probs, targets, losses, order, datamodule) -> str:
    names = datamodule.data.feature_names or [f"x{j}" for j in range(raw.shape[1])]
    shown = datamodule.fold.test if len(datamodule.fold.test) else datamodule.fold.val
    rows = []
    for i in order:
        pred, true, p = _label(info, probs, targets[i], i)
        row = {"sample": int(shown[i]), "loss": float(losses[i]), "predicted": pred}
        if info.task_obj.has_classes:  # regression predicts a value, not a probability
            row["probability"] = p
        row["true"] = true
        row.update({n: float(v) for n, v in zip(names[:12], raw[i][:12].tolist(), strict=False)})
        rows.append(row)
    return page.table(rows, digits=3) + page.note("feature values as in the data file (first 12 features)")  # fmt: skip


def _inside(out, model, datamodule, raw, probs, targets, wrong, unsure, settings) -> list[tuple[str, str]]:  # fmt: skip
    info = model.info
    name, layer = inside.target_layer(model, settings.get("target_layer"))
    n = int(settings.get("cam_samples", 8))
    picks = [*wrong[:n], *unsure[:n]]
    if not picks:
        return []
    x = datamodule.prepare_inputs(raw[torch.as_tensor(picks)].to(next(model.parameters()).device))
    # Grad-CAM needs the gradient at the target layer; under a frozen backbone (feature
    # extraction, cached features) no weight below it requires one, so the input does.
    x = x.detach().requires_grad_(True)
    classes = mistakes.predicted_class(probs[picks], info.task).tolist()
    if not available("pytorch_grad_cam"):  # base install: the figures below need no extra
        return _without_gradcam(out, model, layer, name, x, info, settings)
    with torch.enable_grad():
        maps = inside.gradcam(model, x, classes, layer, info.task)
    titles = []
    for k, i in enumerate(picks):
        pred, true, _ = _label(info, probs, targets[i], i)
        titles.append(f"wrong: {pred}\n(true {true})" if k < len(wrong[:n]) else f"correct: {pred}\n(least sure)")  # fmt: skip
    images = to_float(raw[torch.as_tensor(picks)]).numpy()
    mistakes.image_grid(images, titles, out / "gradcam.png", overlays=maps)
    inside.activations(model, x[0].detach(), out / "activations.png")
    inside.first_filters(model, out / "filters.png")
    sections = [
        (f"Grad-CAM on {name}", page.image("gradcam.png", "Grad-CAM heat maps") + page.note(
            "where the evidence for the predicted class lies (translucent, red = most): wrong "
            "predictions first, then the correct predictions the model was least sure of")),
        ("Intermediate activations", page.image("activations.png", "activation maps")),
        ("First-layer filters", page.image("filters.png", "first-layer filters")),
    ]  # fmt: skip
    side = min(info.input_shape[-2:])
    smallest = int(settings.get("filter_patterns_min_size", 32))
    if side >= smallest:  # on tiny images the patterns are noise and cost most of the report
        inside.filter_patterns(model, layer, tuple(info.input_shape), out / "filter_patterns.png")
        sections.append((f"What filters of {name} respond to most", page.image("filter_patterns.png", "inputs maximizing each filter")
                         + page.note("inputs found by gradient ascent on each filter's mean activation")))  # fmt: skip
    else:
        sections.append(("Filter patterns", page.note(
            f"skipped: images are {side} px, below report.filter_patterns_min_size={smallest}; "
            "gradient-ascent patterns of such small inputs are noise")))  # fmt: skip
    return sections


def _without_gradcam(out, model, layer, name, x, info, settings) -> list[tuple[str, str]]:
    """The inside-the-model sections of a base install: Grad-CAM named as skipped, the rest as usual."""
    inside.activations(model, x[0].detach(), out / "activations.png")
    inside.first_filters(model, out / "filters.png")
    return [
        (f"Grad-CAM on {name}", page.note(skipped("Grad-CAM", "pytorch_grad_cam"))),
        ("Intermediate activations", page.image("activations.png", "activation maps")),
        ("First-layer filters", page.image("filters.png", "first-layer filters")),
    ]


def _links(run_dir: Path) -> list[tuple[str, str]]:
    parent = run_dir.parent
    links = []
    if (parent / "cv_summary.csv").is_file():
        links.append(page.link("../../report/index.html", "cross-validation report (all folds)"))
    if (parent / "study.journal").is_file() or (parent / "sweep_summary.json").is_file():
        links.append(
            page.link("../../trials.csv", "all trials of this sweep")
            + " · "
            + page.link("../../sweep_summary.json", "sweep summary")
        )
    return [("Related", "<br>".join(links))] if links else []


def write_cv_report(run_dir: Path, cv) -> Path:
    """The K-fold overview: one row per fold, mean ± std, the ensemble, links to each fold's report."""
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    keys = [k for k in cv.mean if k.endswith(("/loss", f"/{cv.main_metric}"))]
    rows = [{"fold": r["fold"], **{k: r.get(k) for k in keys}} for r in cv.folds]
    rows += [{"fold": "mean", **cv.mean}, {"fold": "std", **cv.std}]
    rows = [{k: r.get(k) for k in ["fold", *keys]} for r in rows]
    if cv.ensemble:
        rows.append({"fold": "fold ensemble (test)", **{k: cv.ensemble.get(k) for k in keys}})
    # Folds skip their own report by default (report.in_trials_and_folds): link those that
    # exist, give the command for the rest.
    built = [r for r in cv.folds if (run_dir / r["dir"] / "report" / "index.html").is_file()]
    reports = [page.link(f"../{r['dir']}/report/index.html", f"{r['fold']} report") for r in built]
    missing = [r for r in cv.folds if r not in built]
    if missing:
        names = ", ".join(r["fold"] for r in missing)
        command = f"python -m dlrecipe.report {run_dir / missing[0]['dir']}"
        reports.append(page.note(f"not built for {names}; build one with: {command}"))
    sections = [
        ("Folds", page.table(rows) + page.note("every metric of every fold is in cv_summary.csv")),
        ("Fold reports", " · ".join(reports)),
    ]
    return page.write_page(
        out / "index.html", f"dlrecipe cross-validation: {run_dir.name}", sections
    )


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _to_loggers(out: Path, loggers: list) -> None:
    pngs = sorted(out.glob("*.png"))
    for logger in loggers:
        kind = type(logger).__name__
        if kind == "TensorBoardLogger":
            from PIL import Image

            for png in pngs:
                with Image.open(png) as img:
                    logger.experiment.add_image(
                        f"report/{png.stem}", np.asarray(img.convert("RGB")), dataformats="HWC"
                    )
        elif kind == "WandbLogger":
            for png in pngs:
                logger.log_image(key=f"report/{png.stem}", images=[str(png)])
