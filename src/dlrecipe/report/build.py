"""Write a run's report: report/index.html with curves, evaluation plots, mistakes and Grad-CAM.

    python -m dlrecipe.report outputs/train/<date>/<time>      # (re)build it from the checkpoint

Runs after testing on rank 0 only, on the best checkpoint's weights, so it never slows the
training loop. Images also go to TensorBoard and W&B when those loggers are on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.loaders import to_float
from dlrecipe.extras import available, skipped
from dlrecipe.models.module import LitModel
from dlrecipe.predict import predict_batches
from dlrecipe.report import figures, inside, mistakes, page


def write_report(run_dir: Path, model: LitModel, datamodule: DataModule, settings: dict[str, Any], loggers: list = ()) -> Path:  # fmt: skip
    out = run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    info, fold = model.info, datamodule.fold
    stage, indices = ("test", fold.test) if len(fold.test) else ("validation", fold.val)
    raw = datamodule.raw_inputs(indices)
    model.eval()
    probs = predict_batches(
        model, datamodule, (raw[i : i + 512] for i in range(0, len(raw), 512))
    ).numpy()
    targets = datamodule.data.targets[torch.as_tensor(indices)].numpy()
    summary = _read_json(run_dir / "summary.json")
    sections: list[tuple[str, str]] = [("Run", _run_facts(run_dir, summary, stage))]
    if (run_dir / "learning_curves.png").is_file():
        sections.append(
            ("Learning curves", page.image("../learning_curves.png", "learning curves"))
        )
    sections += _evaluation(out, info, probs, targets, stage)
    losses = mistakes.per_sample_loss(probs, targets, info.task)
    order = mistakes.worst(losses, int(settings.get("worst_k", 16)))
    sections.append(_mistakes(out, info, raw, probs, targets, losses, order, datamodule))
    if info.is_image and inside.conv_layers(model):
        sections += _inside(out, model, datamodule, raw, probs, targets, losses, order, settings)
    sections += _links(run_dir)
    index = page.write_page(out / "index.html", f"dlrecipe report: {run_dir.name}", sections)
    _to_loggers(out, loggers)
    return index


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
    if info.task == "regression":
        figures.regression(targets, probs, out / "regression.png")
        return [
            ("Predicted vs true", page.image("regression.png", "predicted vs true and residuals"))
        ]
    predicted = probs.argmax(1) if info.task == "multiclass" else (probs >= 0.5).astype(int)
    names = info.class_names
    figures.confusion(targets, predicted, names, out / "confusion_matrix.png")
    figures.roc_pr(targets, probs, names, out / "roc_pr.png")
    figures.calibration(targets, probs, out / "calibration.png")
    return [
        ("Confusion matrix", page.image("confusion_matrix.png", "confusion matrix")),
        (
            "Per-class precision, recall, F1",
            page.table(figures.per_class(targets, predicted, names)),
        ),
        ("ROC and precision-recall", page.image("roc_pr.png", "ROC and precision-recall curves")),
        ("Calibration", page.image("calibration.png", "reliability diagram")),
    ]


def _label(info, probs: np.ndarray, target, i: int) -> tuple[str, str, float]:
    """(predicted label, true label, probability of the prediction) for sample position i."""
    if info.task == "regression":
        return f"{probs[i]:.3g}", f"{target:.3g}", float("nan")
    if info.task == "binary":
        k = int(probs[i] >= 0.5)
        return (
            info.class_names[k],
            info.class_names[int(target)],
            float(probs[i] if k else 1 - probs[i]),
        )
    k = int(probs[i].argmax())
    return info.class_names[k], info.class_names[int(target)], float(probs[i, k])


def _mistakes(out, info, raw, probs, targets, losses, order, datamodule) -> tuple[str, str]:
    title = f"Worst {len(order)} predictions (highest loss)"
    if info.is_image:
        titles = []
        for i in order:
            pred, true, p = _label(info, probs, targets[i], i)
            titles.append(
                f"pred {pred} ({p:.2f})\ntrue {true}\nloss {losses[i]:.2f}"
                if p == p
                else f"pred {pred}\ntrue {true}\nloss {losses[i]:.2f}"
            )
        mistakes.image_grid(
            to_float(raw[torch.as_tensor(order)]).numpy(), titles, out / "worst_mistakes.png"
        )
        return title, page.image("worst_mistakes.png", "worst mistakes")
    names = datamodule.data.feature_names or [f"x{j}" for j in range(raw.shape[1])]
    rows = []
    for i in order:
        pred, true, p = _label(info, probs, targets[i], i)
        shown = datamodule.fold.test if len(datamodule.fold.test) else datamodule.fold.val
        row = {"sample": int(shown[i]), "loss": float(losses[i]),
               "predicted": pred, "probability": p if p == p else None, "true": true}  # fmt: skip
        row.update({n: float(v) for n, v in zip(names[:12], raw[i][:12].tolist(), strict=False)})
        rows.append(row)
    return title, page.table(rows, digits=3) + page.note(
        "feature values as in the data file (first 12 features)"
    )


def _inside(
    out, model, datamodule, raw, probs, targets, losses, order, settings
) -> list[tuple[str, str]]:
    info = model.info
    name, layer = inside.target_layer(model, settings.get("target_layer"))
    n = int(settings.get("cam_samples", 8))
    correct = [
        i
        for i in np.argsort(losses)
        if _label(info, probs, targets[i], i)[0] == _label(info, probs, targets[i], i)[1]
    ][:n]
    picks = [*order[:n], *correct]
    x = datamodule.prepare_inputs(raw[torch.as_tensor(picks)].to(next(model.parameters()).device))
    # Grad-CAM needs the gradient at the target layer; under a frozen backbone (feature
    # extraction, cached features) no weight below it requires one, so the input does.
    x = x.detach().requires_grad_(True)
    classes = [
        int(probs[i] >= 0.5) if info.task == "binary" else int(probs[i].argmax()) for i in picks
    ]
    if not available("pytorch_grad_cam"):  # base install: the figures below need no extra
        cam = page.note(skipped("Grad-CAM", "pytorch_grad_cam"))
        return [(f"Grad-CAM on {name}", cam), *_inside_figures(out, model, layer, name, x, info)]
    with torch.enable_grad():
        maps = inside.gradcam(model, x, classes, layer, info.task)
    titles = []
    for k, i in enumerate(picks):
        pred, true, _ = _label(info, probs, targets[i], i)
        titles.append(
            f"high loss: {pred} (true {true})" if k < len(order[:n]) else f"correct: {pred}"
        )
    mistakes.image_grid(
        to_float(raw[torch.as_tensor(picks)]).numpy(), titles, out / "gradcam.png", overlays=maps
    )
    return [
        (
            f"Grad-CAM on {name}",
            page.image("gradcam.png", "Grad-CAM heat maps")
            + page.note(
                "where the predicted class's evidence lies: worst mistakes first, then confident correct predictions"
            ),
        ),
        *_inside_figures(out, model, layer, name, x, info),
    ]


def _inside_figures(out, model, layer, name, x, info) -> list[tuple[str, str]]:
    """Activations, filters and filter patterns: plain torch, no extra needed."""
    inside.activations(model, x[0].detach(), out / "activations.png")
    inside.first_filters(model, out / "filters.png")
    inside.filter_patterns(model, layer, tuple(info.input_shape), out / "filter_patterns.png")
    return [
        ("Intermediate activations", page.image("activations.png", "activation maps")),
        ("First-layer filters", page.image("filters.png", "first-layer filters")),
        (
            f"What filters of {name} respond to most",
            page.image("filter_patterns.png", "inputs maximizing each filter")
            + page.note("inputs found by gradient ascent on each filter's mean activation"),
        ),
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
    reports = [
        page.link(f"../{r['dir']}/report/index.html", f"{r['fold']} report") for r in cv.folds
    ]
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
