"""Rebuild a finished run's report from its checkpoint and config.

python -m dlrecipe.report outputs/train/<date>/<time>
python -m dlrecipe.report <run dir> --target-layer net.features.3 --worst-k 24
python -m dlrecipe.report <run dir> --trusted-targets my_pkg.nets.MyNet   # a net of your own
"""

from __future__ import annotations

import sys
from pathlib import Path

from dlrecipe.edge import ArgumentParser, user_error
from dlrecipe.errors import ConfigError, read_json


def checkpoint_of(run_dir: Path) -> Path:
    summary = run_dir / "summary.json"
    if summary.is_file():
        facts = read_json(summary)
        if facts.get("status") == "diverged":  # its checkpoints hold no result worth a report
            raise ConfigError(
                f"{run_dir} diverged (summary.json status: diverged): {facts.get('diagnosis')}"
            )
        best = facts.get("best_checkpoint")
        if best and Path(best).is_file():
            return Path(best)
    found = sorted((run_dir / "checkpoints").glob("best*.ckpt")) or sorted(
        (run_dir / "checkpoints").glob("*.ckpt")
    )
    if not found:
        raise ConfigError(
            f"{run_dir} has no checkpoint (checkpoints/*.ckpt); the report needs a finished run "
            "(debug=fdr runs save none)"
        )
    return found[-1]


def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m dlrecipe.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--target-layer", default=None, help="Grad-CAM layer, e.g. net.features.6")
    parser.add_argument("--worst-k", type=int, default=16)
    parser.add_argument("--cam-samples", type=int, default=8)
    parser.add_argument("--filter-patterns-min-size", type=int, default=32,
                        help="gradient-ascent filter patterns for images at least this many px a side")  # fmt: skip
    parser.add_argument(
        "--trusted-targets", default="", metavar="A,B",
        help="callables outside dlrecipe's own that the run's config may build (dlrecipe.trust)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        from dlrecipe.trust import use_trusted_targets

        use_trusted_targets([t for t in args.trusted_targets.split(",") if t.strip()])
        if not args.run_dir.is_dir():
            raise ConfigError(f"{args.run_dir} is not a run directory")
        from dlrecipe.report.build import write_report
        from dlrecipe.restore import restore

        _, datamodule, model = restore(checkpoint_of(args.run_dir))
        datamodule.setup("test")
        settings = {
            "worst_k": args.worst_k,
            "target_layer": args.target_layer,
            "cam_samples": args.cam_samples,
            "filter_patterns_min_size": args.filter_patterns_min_size,
        }
        index = write_report(args.run_dir, model, datamodule, settings)
    except Exception as err:  # a user's mistake: one line, exit 2; a bug: its traceback
        return user_error(err, argv)
    print(f"report: {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
