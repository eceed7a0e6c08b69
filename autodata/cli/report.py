"""``autodata report RUN_DIR``: the summary of a run, its plots drawn again, suspected mislabels.

Works on a finished run and on one still training (it reads the files the run has written:
``config.json``, ``metrics.jsonl``, ``checkpoints/last.pt``; the checkpoint is loaded with
``weights_only=True`` into a run rebuilt from its config only when a plot or the suspects
need the model, the reweighter or the learned policy).
"""
from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["register"]

EXAMPLES = """examples:
  autodata report runs/digits_mwn
  autodata report runs/digits_mwn --suspects 50            # writes runs/digits_mwn/suspects.csv
  autodata report runs/c10_aa --no-plots
"""


def _run(args: argparse.Namespace) -> int:
    from autodata._imports import MissingExtraError
    from autodata.runs import RunDirectory
    from autodata.runs.plots import link_plots_in_summary, load_run, write_run_plots

    folder = RunDirectory(args.run_dir)
    if not folder.holds_run():
        raise ValueError(f"RUN_DIR must be an autodata run directory (with config.json), but got {args.run_dir!r}; "
                         f"train one with: autodata train --out DIR.")
    config = folder.config()
    if args.suspects is not None:
        if args.suspects < 1:
            raise ValueError(f"--suspects must be >= 1, but got {args.suspects}.")
        if config.reweighter != "mwn":
            raise ValueError(f"--suspects needs a run trained with --reweighter mwn, but {args.run_dir} has "
                             f"reweighter={config.reweighter!r}.")
        if not folder.checkpoint_path.exists():
            raise ValueError(f"--suspects needs a trained reweighter, but {args.run_dir} has no checkpoint yet; "
                             f"wait for the first epoch to finish.")
    run: Any = load_run(folder.path) if args.suspects is not None else None
    notes: list[str] = []
    written = []
    if not args.no_plots:
        try:
            written = write_run_plots(folder.path, run=run)
        except MissingExtraError as err:
            notes.append(f"plots skipped: {err}")
    else:
        link_plots_in_summary(folder.path)
    if folder.summary_path.exists():
        print(folder.summary_path.read_text(encoding="utf-8"), end="", flush=True)
    else:
        records = folder.read_metrics()
        print(f"{args.run_dir}: {len(records)} of {config.epochs} epochs recorded (no summary.md yet).", flush=True)
    print("", flush=True)
    if written:
        print("plots:", flush=True)
        for path in written:
            print(f"  {path}", flush=True)
    for note in notes:
        print(note, flush=True)
    if args.suspects is not None:
        from autodata.runs.suspects import training_sample_weights, write_suspects_csv

        out = args.suspects_out or os.path.join(args.run_dir, "suspects.csv")
        samples = training_sample_weights(run)
        rows = write_suspects_csv(run, out, args.suspects, samples=samples)
        line = f"suspects: the {rows} training samples with the lowest learned weights in {out}"
        if samples.corrupted is not None:
            hits = int(samples.corrupted[samples.lowest(rows)].sum())
            line += (f"; {hits} of them ({hits / max(rows, 1):.0%}) had a corrupted label, against "
                     f"{samples.corrupted.mean():.0%} of all training samples")
        print(line, flush=True)
        trend = _loss_weight_trend(samples.loss, samples.weight)
        if trend > 0:
            print("note: the learned weight still grows with the loss (rank correlation "
                  f"{trend:+.2f}), so the lowest weights go to the easiest samples, not to wrong labels; "
                  "train longer or with a larger meta set before trusting this list.", flush=True)
    return 0


def _loss_weight_trend(loss: Any, weight: Any) -> float:
    """Spearman rank correlation of loss and weight (negative: large losses are down-weighted)."""
    import numpy as np

    if len(loss) < 2:
        return 0.0
    ranks = [np.argsort(np.argsort(v, kind="stable")).astype(float) for v in (loss, weight)]
    if ranks[0].std() == 0 or ranks[1].std() == 0:
        return 0.0
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report", help="print a run's summary, draw its plots, list suspected mislabels",
        description="Print the summary of a run directory (finished or still training), draw its plots into "
                    "RUN_DIR/plots/ and link them from summary.md; with --suspects N, write the N training "
                    "samples with the lowest learned weights (a Meta-Weight-Net run) to a CSV file.",
        epilog=EXAMPLES,
    )
    report.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by autodata train")
    report.add_argument("--suspects", type=int, metavar="N", default=None,
                        help="write the N lowest-weighted training samples to RUN_DIR/suspects.csv")
    report.add_argument("--suspects-out", metavar="CSV", default=None, help="where --suspects writes (default RUN_DIR/suspects.csv)")
    report.add_argument("--no-plots", action="store_true", help="print the summary only")
    report.set_defaults(run=_run)
