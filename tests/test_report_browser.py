"""A default run's report opened in headless Chromium: every image loads, no console errors,
the header names the experiment, its overrides and a copy of its config; a screenshot is kept.

    make test PYTEST_ARGS="tests/test_report_browser.py"    # installs chromium (apt-get) if absent
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dlrecipe.train import main
from tests.browser import check_page, chromium
from tests.conftest import run_main

ROOT = Path(__file__).resolve().parents[1]


def _need_chromium() -> None:
    if chromium() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it with apt-get")
        pytest.skip("chromium is not installed (`make test` installs it: apt-get install chromium)")


@pytest.fixture(scope="module")
def default_run(tmp_path_factory) -> Path:
    """`python -m dlrecipe.train` with its defaults (digits CNN), through Hydra so that .hydra/
    exists as in any user run; two epochs and no progress bar to keep the test short. Its
    main() runs in this process (tests.conftest.run_main): no second import of torch."""
    _need_chromium()  # no browser: no run to look at either
    run = tmp_path_factory.mktemp("default") / "run"
    args = ["dlrecipe-train", "trainer.max_epochs=2", "trainer.enable_progress_bar=false",
            f"hydra.run.dir={run}"]  # fmt: skip
    assert run_main(main, args, cwd=ROOT) == 0
    return run


@pytest.mark.slow
def test_report_opens_in_a_browser_with_every_image_and_no_errors(default_run, tmp_path):
    _need_chromium()
    shot = tmp_path / "report.png"  # kept in the test's temp dir to look at
    checked = check_page(default_run / "report" / "index.html", shot)
    assert len(checked.images) >= 8
    assert all(i["complete"] and i["width"] > 0 for i in checked.images), checked.images
    assert checked.errors == []
    assert checked.title == "dlrecipe report: train"  # task_name, not a timestamp
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_the_browser_check_sees_broken_images_and_console_errors(tmp_path):
    _need_chromium()
    (tmp_path / "page.html").write_text(
        "<html><body><img src='missing.png'><script>console.error('boom')</script></body></html>"
    )
    checked = check_page(tmp_path / "page.html", tmp_path / "shot.png")
    assert checked.images[0]["width"] == 0
    assert any("boom" in e for e in checked.errors)
    assert any("missing.png" in e for e in checked.errors)


@pytest.mark.slow
def test_report_header_names_experiment_overrides_and_config(default_run):
    out = default_run / "report"
    text = (out / "index.html").read_text()
    assert "<title>dlrecipe report: train</title>" in text
    assert "<code>trainer.max_epochs=2</code>" in text
    assert '<a href="config.yaml">' in text
    assert "task_name: train" in (out / "config.yaml").read_text()
