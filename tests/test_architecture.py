"""The core's boundary, read from the source: what imports what, and a run without the options.

    python -m pytest tests/test_architecture.py -q

The import graph is built with `ast` (no module is imported, so no side effects and no cost):
every `import` / `from ... import` of a dlrecipe module counts, at module level or inside a
function (a lazy import is still a dependency: it runs when that path runs). docs/architecture.md
says which module is core and which capability is a plug-in.
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
CONF = SRC.parent / "conf"

# The trusted core: one run's chain and what it cannot do without (data, model, checkpoints,
# resume, the trust boundary, the edge that turns mistakes into one line) plus the callbacks
# the default config names (conf/callbacks/default.yaml).
CORE_MODULES = {
    "train", "builders", "evaluate", "hooks", "summary", "checkpoints", "resume", "trust", "edge",
    "errors", "failures", "guards", "configs", "console", "quiet", "habits", "extras", "versions",
    "compat", "callbacks", "callbacks.history", "callbacks.epochs", "callbacks.random_state",
    "callbacks.last_checkpoint", "callbacks.state_key",
    "models", "models.module", "models.tasks", "models.init", "models.optim",
    "models.regularization", "models.schedules", "models.speed",
    "models.nets", "models.nets.cnn", "models.nets.mlp", "models.nets.layers", "models.nets.residual",
    "csv_logs",  # a resumed run's metrics across CSV logger versions
    # builders resolves `model.net.backbone` (net_factory): backbone nets are built by the core
    "models.backbones", "models.earlier_run", "models.nets.backbone",
}  # fmt: skip
CORE_PACKAGES = ("data", "tasks")  # every module under them is core
# Plug-ins: run hooks, non-default callbacks, and what only they use. The core imports none of
# them, and the default run works with all of them deleted (test below).
OPTIONAL_PACKAGES = ("sweep", "report", "sanity", "lint", "cv", "loggers")
OPTIONAL_MODULES = (
    "refit", "diagnosis", "predict", "distributed", "models.finetuning",
    "callbacks.averaging", "callbacks.batch_growth", "callbacks.curriculum",
    "callbacks.data_schedule", "callbacks.monitor",
)  # fmt: skip
# Lazy imports from the core into a plug-in, each only on the path of that plug-in's feature.
# Known and listed here so that a new one fails; each names why it is still there.
CORE_EXCEPTIONS: set[tuple[str, str]] = set()  # none left
# eval and the fold ensemble share restore.py; tasks/__init__.py (not base.py) loads the built-in
# tasks on first use, so `import dlrecipe.tasks` stays free of torch without a cycle.
KNOWN_CYCLES: list[list[str]] = []  # none left; a new one is a layering mistake to fix


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str], lazy: bool = True) -> set[str]:
    """The dlrecipe modules `path` imports anywhere in its body (lazy: inside functions too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree) if lazy else tree.body:
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x / from ..y import z
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [base, *(f"{base}.{a.name}" for a in node.names)]
        else:
            continue
        for target in targets:
            while target not in known and "." in target:  # `from pkg import name`: the module
                target = target.rpartition(".")[0]
            if target in known and target != name and target.startswith("dlrecipe"):
                found.add(target)
    return found


def import_graph(lazy: bool = True) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (SRC / "dlrecipe").rglob("*.py")}
    return {name: imports_of(path, set(paths), lazy) for name, path in paths.items()}


def is_core(module: str) -> bool:
    short = module.removeprefix("dlrecipe").lstrip(".")
    return short in CORE_MODULES or short == "" or short.split(".")[0] in CORE_PACKAGES


def is_optional(module: str) -> bool:
    short = module.removeprefix("dlrecipe.")
    return short.split(".")[0] in OPTIONAL_PACKAGES or short in OPTIONAL_MODULES


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "dlrecipe.resume" in graph["dlrecipe.cv.runner"]  # inside cross_validate()
    assert "dlrecipe.builders" in graph["dlrecipe.edge"]  # inside hydra_command()
    assert "dlrecipe.hooks" in graph["dlrecipe.train"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_core_imports_only_the_core():
    graph = import_graph()
    core = [m for m in graph if is_core(m)]
    assert "dlrecipe.train" in core and not [m for m in core if is_optional(m)]
    leaks = sorted(
        (m, dep)
        for m in core
        for dep in graph[m]
        if not is_core(dep) and (m, dep) not in CORE_EXCEPTIONS
    )
    assert not leaks, f"core modules import plug-ins (make them hooks or callbacks): {leaks}"
    stale = [e for e in CORE_EXCEPTIONS if e[1] not in graph.get(e[0], set())]
    assert not stale, f"remove these from CORE_EXCEPTIONS, they are gone: {stale}"


def test_the_plug_ins_named_here_exist():
    graph = import_graph()
    for name in (*OPTIONAL_PACKAGES, *OPTIONAL_MODULES):
        assert f"dlrecipe.{name}" in graph, f"{name} is listed as a plug-in but does not exist"


def test_nets_know_nothing_above_them():
    """models/nets/ builds plain nn.Modules from shapes: no builders, checkpoints, runs."""
    graph = import_graph()
    # besides nets/ and DataInfo only leaves: ConfigError, install hints, compat shims
    allowed = ("dlrecipe.models.nets", "dlrecipe.data.info", "dlrecipe.errors", "dlrecipe.extras",
               "dlrecipe.compat")  # fmt: skip
    above = sorted(
        (m, dep)
        for m in graph
        if m.startswith("dlrecipe.models.nets")
        for dep in graph[m]
        if not dep.startswith(allowed)
    )
    if above:
        pytest.xfail(f"nets/ imports from above it (the finetune branch fixes this): {above}")


def test_no_import_cycles():
    """Lazy imports count: a cycle means neither side can be read, tested or removed alone."""
    found = [c for c in cycles(import_graph()) if c not in KNOWN_CYCLES]
    nets = [c for c in found if all(m.startswith("dlrecipe.models.nets.") for m in c)]
    assert [c for c in found if c not in nets] == []
    if nets:
        pytest.xfail(f"nets/ backbone <-> earlier_run (the finetune branch fixes this): {nets}")


def test_no_import_cycles_at_module_level():
    """Module-level imports alone: a cycle here breaks `import` itself, whatever is imported first."""
    assert cycles(import_graph(lazy=False)) == []


def _strip_plug_ins(root: Path) -> None:
    """Delete every plug-in module, the conf files that name one, and the hooks list."""
    pkg = root / "src" / "dlrecipe"
    for name in OPTIONAL_PACKAGES:
        shutil.rmtree(pkg / name)
    for name in OPTIONAL_MODULES:
        (pkg / f"{name.replace('.', '/')}.py").unlink()
    shutil.rmtree(root / "src" / "hydra_plugins" / "dlrecipe_sweeper")  # the sweep's Hydra plugin
    gone = tuple(f"dlrecipe.{n}" for n in (*OPTIONAL_PACKAGES, *OPTIONAL_MODULES))
    for path in (root / "conf").rglob("*.yaml"):
        if path.name != "train.yaml" and any(g in path.read_text() for g in gone):
            path.unlink()  # callbacks=ema, the fine-tuning stages, the sweep's grid sampler...
    train = root / "conf" / "train.yaml"
    kept = [line for line in train.read_text().splitlines() if "_target_: dlrecipe." not in line]
    train.write_text("\n".join(kept).replace("hooks:", "hooks: []") + "\n")


def test_the_default_run_works_without_any_plug_in(tmp_path):
    """`make train`'s run (1 epoch) from a copy of src/ and conf/ with every plug-in deleted."""
    root = tmp_path / "tree"
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(SRC, root / "src", ignore=skip)
    shutil.copytree(CONF, root / "conf", ignore=skip)
    _strip_plug_ins(root)
    assert not (root / "src" / "dlrecipe" / "report").exists()
    # The copy only: no other checkout's dlrecipe (an editable install's .pth) may fill the gaps.
    copy = str(root / "src")
    start = (
        "import runpy, sys; from pathlib import Path\n"
        f"sys.path[:] = [p for p in sys.path if p == {copy!r} or not (Path(p) / 'dlrecipe').is_dir()]\n"
        f"import dlrecipe; assert dlrecipe.__file__.startswith({copy!r}), dlrecipe.__file__\n"
        "runpy.run_module('dlrecipe.train', run_name='__main__', alter_sys=True)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DLRECIPE_CONF"}  # conf/: the copy's
    env.update(PYTHONPATH=copy, OMP_NUM_THREADS="1")
    args = ["trainer.max_epochs=1", "trainer.enable_progress_bar=false", "hydra.run.dir=run"]
    result = subprocess.run([sys.executable, "-c", start, *args], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test_metrics"]["test/acc"] > 0.2
    assert not (tmp_path / "run" / "report").exists()  # the plug-ins really were gone
    assert "dlrecipe.report" not in result.stdout + result.stderr
