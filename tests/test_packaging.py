"""A non-editable install, with none of the optional extras, runs the default experiment offline
from an empty directory; a feature whose extra is missing says which extra in one line.

    python -m pytest tests/test_packaging.py -q

The install is real (`pip install --no-deps --target`, against the test environment's packages);
"without the extras" is real too: the child runs `python -S` on a copy of site-packages that
leaves out the extras' distributions (files and metadata), so imports fail exactly as on a
machine where they were never installed.
"""

from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every distribution an extra brings (and what only they pull in: OpenCV comes with grad-cam).
EXTRA_DISTS = [
    "wandb", "tensorboard", "tensorboard-data-server", "tensorboardX", "optuna", "cmaes",
    "sqlalchemy", "timm", "grad-cam", "opencv-python", "opencv-python-headless",
    "hydra-submitit-launcher", "submitit", "hydra-joblib-launcher", "psycopg", "psycopg-binary",
    "dlrecipe",  # the editable install of this checkout: the child must use the built one
]  # fmt: skip


def _record(dist: md.Distribution) -> set[str]:
    return {str(f) for f in (dist.files or []) if not str(f).startswith("..")}


def base_site_packages(dest: Path) -> Path:
    """site-packages as a base install would have it: links to everything but EXTRA_DISTS."""
    site = Path(sysconfig.get_paths()["purelib"])
    blocked: set[str] = set()
    kept: set[str] = set()  # first one and two path parts of files that stay
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-")
        files = _record(dist)
        if name in {d.lower() for d in EXTRA_DISTS}:
            blocked |= files
        else:
            for f in files:
                parts = Path(f).parts
                kept |= {parts[0], "/".join(parts[:2])}
    blocked_prefixes = {"/".join(Path(f).parts[:n]) for f in blocked for n in (1, 2)}

    def link(src: Path, dst: Path, rel: str) -> None:
        dst.mkdir(parents=True, exist_ok=True)
        for child in src.iterdir():
            path = f"{rel}{child.name}"
            if path in blocked_prefixes or path in blocked:
                if child.is_dir() and path in kept and rel == "":
                    link(child, dst / child.name, f"{path}/")  # a shared namespace (hydra_plugins)
                continue
            (dst / child.name).symlink_to(child)

    link(site, dest, "")
    return dest


@pytest.fixture(scope="module")
def base_install(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """pip install --no-deps --target (non-editable, offline) of a copy of this checkout."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = tmp / "source"
    for name in ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md"):
        shutil.copy2(ROOT / name, source / name if source.exists() else _mk(source) / name)
    for name in ("src", "conf"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp / "target"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(target), str(source)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "DLRECIPE_CONF"))}
    env.update(
        PYTHONPATH=f"{target}{os.pathsep}{base_site_packages(tmp / 'site')}",
        WANDB_MODE="offline", HF_HUB_OFFLINE="1", COLUMNS="80", OMP_NUM_THREADS="1",
    )  # fmt: skip
    return {"target": target, "env": env, "tmp": tmp}


def _mk(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def run(install: dict, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-S", *args], cwd=cwd, env=install["env"], capture_output=True,
        text=True, timeout=300,
    )  # fmt: skip


# Every entry point's module imports without the extras, and Hydra's plugin scan (which imports
# every hydra_plugins module) finds dlrecipe's sweeper without optuna, warning-free (-W error).
PROBE = """
import importlib
for name in ("train", "eval", "preview", "report.__main__", "cv_report", "sweep_report", "keys",
             "data_curve", "lr_find", "compare"):
    importlib.import_module(f"dlrecipe.{name}")
from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
assert "DlrecipeOptunaSweeper" in {p.__name__ for p in Plugins.instance().discover(Sweeper)}
import dlrecipe.configs as c, dlrecipe.extras as e
print(c.conf_dir()); print(e.missing())
"""


def test_the_install_ships_configs_and_a_script_per_entry_point(base_install):
    target = base_install["target"]
    assert (target / "dlrecipe" / "conf" / "train.yaml").is_file()
    shipped = {p.relative_to(target / "dlrecipe" / "conf") for p in (target / "dlrecipe" / "conf").rglob("*.yaml")}  # fmt: skip
    assert shipped == {p.relative_to(ROOT / "conf") for p in (ROOT / "conf").rglob("*.yaml")}
    (dist_info,) = target.glob("dlrecipe-*.dist-info")  # [project.scripts] as built
    scripts = {e.name for e in md.Distribution.at(dist_info).entry_points if e.group == "console_scripts"}  # fmt: skip
    assert {"dlrecipe-train", "dlrecipe-eval", "dlrecipe-preview", "dlrecipe-report",
            "dlrecipe-cv-report", "dlrecipe-sweep-report", "dlrecipe-keys", "dlrecipe-data-curve",
            "dlrecipe-lr-find", "dlrecipe-compare"} <= scripts  # fmt: skip
    assert all((target / "bin" / name).is_file() for name in scripts)
    probe = run(base_install, "-W", "error", "-c", PROBE, cwd=base_install["tmp"] / "probe")
    assert probe.returncode == 0, probe.stderr[-3000:]
    conf, missing = probe.stdout.splitlines()[-2:]
    assert conf == str(target / "dlrecipe" / "conf")  # the packaged copy: no repo next to it
    assert "wandb" in missing and "optuna" in missing and "pytorch_grad_cam" in missing


@pytest.mark.slow
def test_default_run_from_an_empty_directory_without_extras(base_install):
    empty = base_install["tmp"] / "empty"
    done = run(base_install, str(base_install["target"] / "bin" / "dlrecipe-train"),
               "trainer.max_epochs=1", cwd=empty)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (summary,) = empty.glob("outputs/train/*/*/summary.json")
    report = (summary.parent / "report" / "index.html").read_text()
    assert "pip install &#x27;dlrecipe[vision]&#x27;" in report  # the Grad-CAM section says why
    assert "Grad-CAM skipped: grad-cam is not installed: pip install 'dlrecipe[vision]'" in (
        done.stdout + done.stderr
    )


@pytest.mark.parametrize(
    ("override", "extra"),
    [("logger=wandb", "wandb"), ("hparams_search=wine_mlp_search", "tune")],
)
def test_a_feature_without_its_extra_names_it(base_install, override, extra):
    done = run(base_install, str(base_install["target"] / "bin" / "dlrecipe-train"), override,
               cwd=base_install["tmp"] / f"extra_{extra}")  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert f"pip install 'dlrecipe[{extra}]'" in line
    made = [p.name for p in (base_install["tmp"] / f"extra_{extra}").rglob("*") if p.is_file()]
    assert not [n for n in made if n.endswith((".ckpt", ".csv")) or n == "summary.json"], made


def test_constraints_pin_every_dependency_inside_pyprojects_ranges():
    """constraints.txt (make venv / make lock) pins each requirement of the base install, every
    extra and dev, at a version its pyproject range allows: CI tests what a user may get."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+, as CI
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = [Requirement(r) for r in project["dependencies"]]
    for reqs in project["optional-dependencies"].values():
        wanted += [Requirement(r) for r in reqs if not r.startswith("dlrecipe[")]
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = version.strip()
    for req in wanted:
        pin = pins.get(canonicalize_name(req.name))
        assert pin is not None, f"constraints.txt has no pin for {req.name}: run make lock"
        assert req.specifier.contains(pin, prereleases=True), f"{req.name}=={pin} vs {req}"
    all_extras = Requirement(project["optional-dependencies"]["all"][0]).extras
    assert all_extras == set(project["optional-dependencies"]) - {"all", "dev"}
    makefile = (ROOT / "Makefile").read_text()
    assert "-c constraints.txt -e '.[all,dev]'" in makefile  # make venv (and so make test)
