"""The README is a contract: every command in its code blocks runs here, scaled down.

    pytest tests/test_readme.py -q

Each command is run in this process (compose + train(), or the entry point's own main) in a
workspace holding the files the README names (houses.csv, photos/, resnet18 weights, ...),
with SCALE appended: one epoch of two batches, no report, no curves. What needs a GPU, a
cluster, the network or several processes is composed only (`COMPOSE_ONLY` says why), and
benchmarks are checked for the flags the README passes. A command this file does not know
how to run fails, so a new README command must be taught here.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import OmegaConf, open_dict
from optuna.trial import TrialState

from dlrecipe.builders import CONF_DIR, check_trainer_keys, compose
from dlrecipe.errors import ConfigError
from tests.readme_commands import Command, readme_commands
from tests.readme_workspace import ROOT, make_workspace

# Scale every run down: `++` sets a key whether or not the chosen config groups have it.
SCALE = ["++trainer.max_epochs=1", "++trainer.limit_train_batches=2", "++trainer.limit_val_batches=1",
         "++trainer.limit_test_batches=1", "++trainer.num_sanity_val_steps=0", "++report.enabled=false",
         "++callbacks.history=null", "++callbacks.model_summary=null", "++trainer.enable_progress_bar=false",
         "++trainer.accelerator=cpu"]  # fmt: skip

# Run, but composed only, and why (the key that marks them).
COMPOSE_ONLY = {
    "data.source.download=true": "needs the network",
    "trainer=ddp": "needs GPUs",
    "hydra/launcher=slurm": "needs a SLURM cluster",
    "trainer=ddp_cpu": "spawns 2 processes (run by tests/test_distributed.py)",
    "model.net.backbone.name=resnet18": "weights=hub: downloads from the network",
}
# README placeholders a user fills in, and what the workspace fills in.
PLACEHOLDERS = {
    "...": "data=image_folder data.source.root=photos/train model=finetune "
    "model.net.backbone.weights=models/resnet18.pth",
    "<run dir>": "<run_dir>",
}
# Bugs owned by another branch of issue #21: expected to fail here until it is merged.
KNOWN_BROKEN: dict[str, str] = {}  # a README command key -> why it is expected to fail for now
COMMANDS = readme_commands()
RUNS: dict[str, Path] = {}  # label -> run directory, for the commands that use an earlier run
MERGED: dict[int, list[Command]] = {}  # filled below, once the helpers exist
DONE: dict[str, Path] = {}  # composed config -> its run: commands that are the same run once


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    return make_workspace(tmp_path_factory.mktemp("readme"))


@pytest.fixture
def inside(workspace, monkeypatch) -> Path:
    monkeypatch.chdir(workspace)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return workspace


def test_the_readme_has_commands_and_this_file_knows_each():
    assert len(COMMANDS) > 50
    for command in COMMANDS:
        assert handler(command) is not None, f"README.md:{command.line}: {command}"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"L{c.line}")
def test_readme_command_runs(command: Command, inside: Path, monkeypatch, request):
    for key, why in KNOWN_BROKEN.items():
        if key in command.text:
            request.applymarker(pytest.mark.xfail(reason=why, strict=False))
    handler(command)(command, inside, monkeypatch)


def handler(command: Command):
    argv = words(command)
    program = " ".join(argv[:3])
    if argv[:2] == ["make", "train"]:
        return run_train
    if argv[:2] in (["make", "test"], ["make", "bench"], ["make", "venv"], ["make", "lock"]):
        return check_make
    if argv[:2] == ["pip", "install"]:
        return check_pip
    if argv[0].startswith("scripts/") or (len(argv) > 1 and argv[1].startswith("scripts/")):
        return check_script
    if program == "python -m dlrecipe.train":
        if command.expects_error:
            return expect_config_error
        if any(a.startswith(key) for a in argv for key in COMPOSE_ONLY):
            return compose_only
        if any(a.startswith("hparams_search=") for a in argv):
            return run_sweep
        return run_train
    return {
        "python -m dlrecipe.eval": run_eval,
        "python -m dlrecipe.report": run_report,
        "python -m dlrecipe.cv_report": run_cv_report,
        "python -m dlrecipe.sweep_report": run_sweep_report,
        "python -m dlrecipe.preview": run_preview,
        "python -m dlrecipe.keys": run_keys,
        "python -m dlrecipe.lr_find": run_lr_find,
        "python -m dlrecipe.data_curve": run_data_curve,
        "python -m dlrecipe.compare": run_compare,
    }.get(program)


def words(command: Command) -> list[str]:
    text = command.text
    for placeholder, value in PLACEHOLDERS.items():
        text = text.replace(placeholder, value)
    return Command(text, command.line).argv


def overrides(command: Command) -> list[str]:
    argv = words(command)
    if argv[0] == "make":  # make train ARGS="..."
        return [w for a in argv[2:] if a.startswith("ARGS=") for w in a[5:].split()]
    return [resolve(a) for a in argv[3:] if a != "-m"]


def resolve(arg: str) -> str:
    """outputs/<task>/<date>/<time>, <run_dir> and <ckpt> -> the runs made here."""
    if "<date>/<time>" in arg:
        head, tail = arg.split("<date>/<time>", 1)
        prefix = head.split("=", 1)[-1]
        if prefix == "outputs/train/":
            run_of("default")
        newest = sorted(Path(prefix).glob("*/*"), key=lambda p: p.stat().st_mtime)[-1]
        if tail.startswith("/checkpoints/"):
            tail = "/" + str(best_ckpt(newest).relative_to(newest))
        return head.replace(prefix, "") + str(newest) + tail
    if "<run_dir>" in arg:
        return arg.replace("<run_dir>", str(run_of("default")))
    return arg


def best_ckpt(run_dir: Path) -> Path:
    return sorted((run_dir / "checkpoints").glob("best-*.ckpt"))[-1]


def run_dir_for(task: str, multirun: bool = False) -> Path:
    """A fresh outputs/<task>/<date>/<time>, laid out as Hydra lays out real runs."""
    base = Path("outputs") / task / ("multiruns" if multirun else "") / "2026-01-01"
    run = base / f"{len(list(base.glob('*'))) if base.is_dir() else 0:06d}"
    run.mkdir(parents=True)
    return run.resolve()


def run_of(label: str) -> Path:
    """The run an eval / report / resume command uses; made by its README command if missing."""
    if label not in RUNS:
        producer = {"default": "make train", "table": "churn.csv"}[label]
        command = next(c for c in COMMANDS if producer in c.text)
        run_train(command, Path.cwd(), None)
    return RUNS[label]


def run_train(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.train import train

    args = overrides(command)
    folds = next((a for a in args if a.startswith("data.split.fold=") and "," in a), None)
    resume = next((a.split("=", 1)[1] for a in args if a.startswith("resume=")), None)
    longer = resume and any(a.startswith("trainer.max_epochs=") for a in args)
    scale = [*SCALE, "++trainer.max_epochs=2"] if longer else SCALE  # "... and train longer"
    cfg = compose([*(a for a in args if a != folds), *scale])
    if folds:  # -m over folds: one job per fold in one multirun directory, as Hydra runs them
        multirun = run_dir_for(cfg.task_name, multirun=True)
        for i, fold in enumerate(folds.split("=", 1)[1].split(",")):
            train(at(compose([*cfg_args(args, folds), f"data.split.fold={fold}", *scale]),
                     multirun / str(i)))  # fmt: skip
        return
    group = MERGED.get(command.line)
    if group:  # plain overrides of the default run, merged with others on other keys (one run)
        cfg = compose([*(a for c in group for a in overrides(c)), *scale])
    same = OmegaConf.to_yaml({k: v for k, v in cfg.items() if k != "paths"}, resolve=False)
    if same in DONE and not resume:  # the same run as an earlier command's: reuse it
        run = DONE[same]
    else:
        run = Path(resume) if resume else run_dir_for(cfg.task_name)
        train(at(cfg, run))
        DONE[same] = run
    if cfg.get("sanity"):
        assert (run / "sanity.json").is_file()
    elif not cfg.trainer.get("fast_dev_run"):
        assert (run / "summary.json").is_file() or (run / "cv_summary.json").is_file()
    if command.text.startswith("make train") and "ARGS" not in command.text:
        RUNS["default"] = run
    if "churn.csv" in command.text:
        RUNS["table"] = run


def merge_groups(commands: list[Command], size: int = 6) -> dict[int, list[Command]]:
    """Plain `python -m dlrecipe.train key=value ...` commands of the default experiment whose
    keys do not overlap (none is the other's prefix), grouped so that each group is one run."""
    groups: list[list[Command]] = []
    for command in commands:
        argv = words(command)
        if handler(command) is not run_train or command.shown_with_output or argv[0] == "make":
            continue
        if any(a.startswith(UNMERGED) or re.search(r"\.(csv|npy|pth)$", a) for a in argv[3:]):
            continue  # its own experiment, data, files or demonstration: a run of its own
        keys = [_key(a) for a in argv[3:]]
        for group in groups:
            taken = [_key(a) for c in group for a in words(c)[3:]]
            if len(group) < size and not any(_overlap(k, t) for k in keys for t in taken):
                group.append(command)
                break
        else:
            groups.append([command])
    return {c.line: g for g in groups if len(g) > 1 for c in g}


UNMERGED = ("experiment=", "data=", "debug=", "resume=", "hparams_search=", "model=", "-m",
            "model.optimizer.lr=", "logger=", "callbacks.curriculum.difficulty=")  # fmt: skip


def _key(arg: str) -> str:
    return arg.split("=", 1)[0].lstrip("+~").replace("/", ".")


def _overlap(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def cfg_args(args: list[str], drop: str) -> list[str]:
    return [a for a in args if a != drop]


def at(cfg, run: Path):
    """cfg with its run directory set (Hydra would set it from hydra.run.dir)."""
    with open_dict(cfg):
        cfg.paths.output_dir = str(run)
    return cfg


def expect_config_error(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.train import train

    with pytest.raises(ConfigError):
        train(compose([*overrides(command), *SCALE, "paths.output_dir=outputs/refused"]))


def compose_only(command: Command, workspace: Path, monkeypatch) -> None:
    """Composed with Hydra's own config (launcher, sweeper) and the trainer flags checked."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=overrides(command), return_hydra_config=True)
    check_trainer_keys(cfg.trainer)
    assert OmegaConf.to_container(cfg, resolve=False)


def run_sweep(command: Command, workspace: Path, monkeypatch) -> None:
    """One trial (n_trials=1) through the real Hydra entry point, then every trial completed."""
    from dlrecipe.train import main

    args = [a for a in overrides(command) if not a.startswith("hydra.sweeper.n_trials=")]
    monkeypatch.setattr(sys, "argv", ["dlrecipe.train", *args, "hydra.sweeper.n_trials=1", *SCALE])
    main()
    preset = [a for a in args if a.startswith(("hparams_search=", "hydra.sweeper.study_name="))]
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = hydra_compose("train", overrides=preset, return_hydra_config=True)
    study_dir = Path(f"outputs/sweep/sweeps/{cfg.hydra.sweeper.study_name}")
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(study_dir / "study.journal"))
    )
    study = optuna.load_study(study_name=cfg.hydra.sweeper.study_name, storage=storage)
    errors = [t.user_attrs.get("error") for t in study.trials if t.state != TrialState.COMPLETE]
    assert study.trials and not errors, errors


def run_eval(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.eval import evaluate

    args = overrides(command)
    table = "predict.input=new_rows.csv" in args or any(
        a.startswith("data.source.path=") for a in args
    )
    ckpt = best_ckpt(run_of("table" if table else "default"))
    args = [f"ckpt_path={ckpt}" if a == "ckpt_path=<ckpt>" else a for a in args]
    out = run_dir_for("eval")
    evaluate(compose([*args, f"paths.output_dir={out}", "trainer.accelerator=cpu",
                      "trainer.enable_progress_bar=false"], "eval"))  # fmt: skip
    if any(a.startswith("predict.input=") for a in args):
        assert (out / "predictions.csv").is_file()


def run_report(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.report.__main__ import main

    run_of("default")
    assert main(overrides(command)) == 0


def run_cv_report(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.cv_report import main

    if not Path("outputs/wine_mlp/multiruns").is_dir():
        run_train(
            next(c for c in COMMANDS if "data.split.fold=0," in c.text), workspace, monkeypatch
        )
    assert main(overrides(command)) == 0


def run_sweep_report(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.sweep_report import main

    if not Path(overrides(command)[0]).is_dir():
        run_sweep(next(c for c in COMMANDS if "hparams_search=digits_lr_bs" in c.text), workspace,
                  monkeypatch)  # fmt: skip
    assert main(overrides(command)) == 0


def run_preview(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.preview import preview

    out = run_dir_for("preview")
    written = preview(compose([*overrides(command), f"paths.output_dir={out}"], "preview"))
    assert Path(written).is_file()


def run_lr_find(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.lr_find import lr_find

    out = run_dir_for("lr_find")
    cfg = compose([*overrides(command), *SCALE, "++trainer.limit_train_batches=null",
                   "lr_find.num_training=30", f"paths.output_dir={out}"], "lr_find")  # fmt: skip
    lr_find(cfg)
    assert (out / "lr_find.png").is_file()


def run_data_curve(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.data_curve import data_curve

    out = run_dir_for("data_curve")
    args = [a for a in overrides(command) if not a.startswith("data_curve.")]
    data_curve(compose([*args, *SCALE, "data_curve.fractions=[0.25,0.5,1.0]", "data_curve.seeds=1",
                        "data_curve.same_steps=false", f"paths.output_dir={out}"], "data_curve"))  # fmt: skip
    assert (out / "data_curve.csv").is_file()


def run_compare(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.compare import main
    from dlrecipe.train import train

    if "multiruns/" in command.text and not Path("outputs/wine_mlp/multiruns").is_dir():
        run_train(
            next(c for c in COMMANDS if "data.split.fold=0," in c.text), workspace, monkeypatch
        )
    args = overrides(command)
    default = str(run_of("default")) if "<run dir>" in command.text else None
    if default and args.count(default) == 2:  # `<run dir> <run dir>`: two different runs
        second = run_dir_for("train")
        train(at(compose([*SCALE, "data.batch_size=32"]), second))
        args[args.index(default, args.index(default) + 1)] = str(second)
    assert main(args) == 0


def check_make(command: Command, workspace: Path, monkeypatch) -> None:
    """`make test` / `make bench` cannot run inside the suite: their recipes are what they say."""
    target = words(command)[1]
    plan = subprocess.run(["make", "-n", "-W", "pyproject.toml", target], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    wanted = {"test": ["ruff check", "pytest"], "bench": ["scripts/bench_throughput.py"],
              "venv": ["-c constraints.txt", ".[all,dev]"], "lock": ["pip freeze"]}[target]  # fmt: skip
    assert all(w in plan.stdout for w in wanted), plan.stdout


def check_pip(command: Command, workspace: Path, monkeypatch) -> None:
    """`pip install '.[a,b]'`: each extra it names exists (the install itself: test_packaging)."""
    tomllib = pytest.importorskip("tomllib")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for target in words(command)[2:]:
        named = re.findall(r"\[([\w,]+)\]", target)
        assert all(e in extras for n in named for e in n.split(",")), (target, sorted(extras))


def run_keys(command: Command, workspace: Path, monkeypatch) -> None:
    from dlrecipe.keys import main

    assert main(words(command)[3:]) == 0


def check_script(command: Command, workspace: Path, monkeypatch) -> None:
    """Benchmarks and worker launchers: the script exists and takes the flags the README passes."""
    argv = words(command)
    script = next(a for a in argv if a.startswith("scripts/"))
    path = ROOT / script
    assert path.is_file(), script
    if path.suffix == ".py":
        flags = {a for a in argv if a.startswith("--")}
        tree = ast.parse(path.read_text())
        declared = {
            node.value
            for call in ast.walk(tree)
            if isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_argument"
            for node in call.args
            if isinstance(node, ast.Constant)
        }
        assert flags <= declared, (script, flags - declared)
    else:  # a shell launcher: valid syntax, and its Hydra overrides compose
        assert subprocess.run(["bash", "-n", str(path)], timeout=30).returncode == 0
        compose([a for a in argv if "=" in a])


MERGED.update(merge_groups(COMMANDS))
