"""dlrecipe without other libraries' private internals: the seams that replaced them, and a
check that keeps private access out of every module but dlrecipe.compat.

    python -m pytest tests/test_compat.py -q

Each replaced hack gets a real run on tiny data (CPU) that shows the public seam does the job.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import torch

import dlrecipe
from dlrecipe.builders import compose
from dlrecipe.csv_logs import metrics_files, read_metrics
from dlrecipe.data.datamodule import DataModule
from dlrecipe.data.loaders import UnrepeatedSampler, evaluation_sampler
from dlrecipe.eval import evaluate, restore
from dlrecipe.models.module import DATA_KEY
from dlrecipe.train import main, train
from tests.conftest import run_main

WINE = ["experiment=wine_mlp", "data.batch_size=32", "callbacks.early_stopping=null",
        "report.enabled=false", "trainer.accelerator=cpu", "trainer.enable_progress_bar=false",
        "callbacks.progress_bar=null", "callbacks.model_summary=null", "extras.lint=false"]  # fmt: skip


def cli(*args: str) -> int:
    """`python -m dlrecipe.train *args` in this process; the exit status."""
    return run_main(main, ["dlrecipe.train", *args])


def test_a_resumed_run_writes_a_new_csv_version_and_every_epoch_stays_readable(tmp_path):
    run = tmp_path / "run"
    assert cli(*WINE, "trainer.max_epochs=2", f"hydra.run.dir={run}") == 0
    first = (run / "csv" / "metrics.csv").read_bytes()
    assert cli(f"resume={run}", "trainer.max_epochs=3") == 0
    assert (run / "csv" / "metrics.csv").read_bytes() == first  # nothing deleted or rewritten
    assert metrics_files(run / "csv") == [run / "csv" / "metrics.csv",
                                          run / "csv" / "version_0" / "metrics.csv"]  # fmt: skip
    trained = read_metrics(run / "csv").dropna(subset=["train/loss"])
    assert list(trained["epoch"].astype(int)) == [0, 1, 2]  # each epoch once, across the resume


def test_the_evaluation_sampler_gives_every_sample_to_exactly_one_rank():
    # dlrecipe's own, instead of Lightning's internal UnrepeatedDistributedSampler.
    shares = [list(UnrepeatedSampler(10, rank, 3)) for rank in range(3)]
    assert shares == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [len(UnrepeatedSampler(10, rank, 3)) for rank in range(3)] == [4, 3, 3]
    assert evaluation_sampler(10, 0, 1) is None  # one process: the loader's plain order


class RenamedData(DataModule):
    """A user's DataModule subclass: Lightning would file its state under "RenamedData"."""


def test_a_datamodule_subclass_keeps_its_normalization_through_eval(make_cfg, tmp_path):
    target = f"{__name__}.RenamedData"
    cfg = make_cfg("data=breast_cancer", "model=mlp", f"data._target_={target}",
                   "trainer.max_epochs=1", "report.enabled=false", "extras.lint=false")  # fmt: skip
    train(cfg)
    summary = json.loads((Path(cfg.paths.output_dir) / "summary.json").read_text())
    best = summary["best_checkpoint"]
    saved = torch.load(best, weights_only=True)[DATA_KEY]
    assert "RenamedData" not in torch.load(best, weights_only=True)  # one copy, under our key
    _, datamodule, _ = restore(best)
    assert type(datamodule) is RenamedData
    assert torch.equal(datamodule.normalization.mean, saved["normalization"]["mean"])  # restored
    got = evaluate(compose([f"ckpt_path={best}", "trainer.accelerator=cpu",
                            f"paths.output_dir={tmp_path / 'eval'}", f"trusted_targets=[{target}]",
                            "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    for key, value in summary["test_metrics"].items():
        assert got[key] == pytest.approx(value, abs=1e-6), key


# -- the rule: other libraries' private internals only in dlrecipe.compat ---------------------
SRC = Path(dlrecipe.__file__).parent
INTERNAL_MODULES = ("lightning.pytorch.overrides",)  # public name, internal contents
# (file, private name): each entry says why it is allowed for now. Keep it empty where possible.
ALLOWED: dict[tuple[str, str], str] = {}  # (file, private name) -> why; keep it empty


def private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class Classes(ast.NodeVisitor):
    """Per class: the names it defines itself (methods, self.<name> = ..., class attributes)."""

    def __init__(self) -> None:
        self.own: dict[str, set[str]] = {}
        self.bases: dict[str, list[str]] = {}

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        names = self.own.setdefault(node.name, set())
        self.bases[node.name] = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
        for child in ast.walk(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                names.add(child.name)
            elif (isinstance(child, ast.Attribute) and isinstance(child.ctx, ast.Store)
                  and isinstance(child.value, ast.Name) and child.value.id == "self"):  # fmt: skip
                names.add(child.attr)
        for child in node.body:
            for target in getattr(child, "targets", [getattr(child, "target", None)]):
                if isinstance(target, ast.Name):
                    names.add(target.id)
        self.generic_visit(node)

    def owned(self, cls: str, seen: frozenset[str] = frozenset()) -> set[str]:
        """What `cls` and its dlrecipe base classes define (a library base's names are not ours)."""
        names = set(self.own.get(cls, ()))
        for base in self.bases.get(cls, []):
            if base in self.own and base not in seen:
                names |= self.owned(base, seen | {cls})
        return names


def private_uses(path: Path, classes: Classes) -> list[tuple[int, str, str]]:
    """(line, name, what) for each private access in one file."""
    found: list[tuple[int, str, str]] = []

    def walk(node: ast.AST, cls: str | None) -> None:
        if isinstance(node, ast.ClassDef):
            cls = node.name
        owned = classes.owned(cls) if cls else set()
        if isinstance(node, ast.Attribute) and private(node.attr) and node.attr not in owned:
            found.append((node.lineno, node.attr, f"attribute .{node.attr}"))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str) and private(node.args[1].value)
                and node.args[1].value not in owned):  # fmt: skip
            found.append((node.lineno, node.args[1].value, f"{node.func.id}(..., '{node.args[1].value}')"))  # fmt: skip
        modules = []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
            found.extend((node.lineno, a.name, f"import {a.name}") for a in node.names if private(a.name))  # fmt: skip
        elif isinstance(node, ast.Import):
            modules = [a.name for a in node.names]
        for module in modules:
            parts = module.split(".")
            if any(private(p) for p in parts) or module.startswith(INTERNAL_MODULES):
                found.append((node.lineno, module, f"import of {module}"))
        for child in ast.iter_child_nodes(node):
            walk(child, cls)

    walk(ast.parse(path.read_text()), None)
    return found


def library_privates_used_through_self(classes: Classes) -> list[str]:
    """A dlrecipe class's `self._x` that one of its library base classes also uses: theirs."""
    import importlib
    import inspect

    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in [n for n in tree.body if isinstance(n, ast.ClassDef)]:
            names = {a.attr for a in ast.walk(node) if isinstance(a, ast.Attribute) and private(a.attr)}  # fmt: skip
            if not names or all(b in classes.own for b in classes.bases[node.name]):
                continue  # only dlrecipe bases (or none): every private name is ours
            module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
            cls = getattr(importlib.import_module(module), node.name)
            for base in cls.__mro__[1:]:
                if base.__module__.split(".")[0] in ("dlrecipe", "builtins"):
                    continue
                try:
                    source = inspect.getsource(base)
                except (OSError, TypeError):
                    continue
                found += [f"{path.relative_to(SRC)}: {node.name} uses {base.__name__}'s {name}"
                          for name in sorted(names) if re.search(rf"self\.{name}\b", source)]  # fmt: skip
    return found


def test_no_module_but_compat_touches_private_internals():
    classes = Classes()
    files = [p for p in sorted(SRC.rglob("*.py")) if p.name != "compat.py"]
    for path in files:
        classes.visit(ast.parse(path.read_text()))
    found = []
    for path in files:
        rel = path.relative_to(SRC).as_posix()
        found += [f"{rel}:{line} {what}" for line, name, what in private_uses(path, classes)
                  if (rel, name) not in ALLOWED]  # fmt: skip
    assert found == [], (
        "move these into dlrecipe/compat.py (one function per need), or use a public API"
    )
    assert library_privates_used_through_self(classes) == []


def test_the_private_access_check_catches_each_kind(tmp_path):
    # The check itself can fail: one file with each kind of access it must see.
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler\n"
        "from torch._dynamo import config\n"
        "from torch.nn.modules.batchnorm import _BatchNorm\n"
        "class Mine:\n"
        "    def __init__(self, other):\n"
        "        self._own = 1\n"
        "        other._folds = []\n"
        "        getattr(other, '_stop_flag')\n"
        "        self._trainer\n"
    )
    classes = Classes()
    classes.visit(ast.parse(sample.read_text()))
    names = [name for _, name, _ in private_uses(sample, classes)]
    assert names == ["lightning.pytorch.overrides.distributed", "torch._dynamo", "_BatchNorm",
                     "_folds", "_stop_flag", "_trainer"]  # fmt: skip
