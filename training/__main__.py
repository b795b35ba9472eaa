"""Command line: ``python -m training --data DIR --arch NAME --split random|subject [--folds K] ...``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("--data", type=Path, help="class-per-folder dataset (e.g. ../shared/data/CK+48)")
    parser.add_argument("--arch", help="architecture name (see --list-archs)")
    parser.add_argument("--split", choices=("random", "subject"), default="subject", help="split protocol")
    parser.add_argument("--folds", type=int, default=0, help="k-fold subject-independent cross-validation")
    parser.add_argument(
        "--max-folds", type=int, help="run only the first N of the --folds folds (comparisons)"
    )
    parser.add_argument(
        "--final",
        action="store_true",
        help="after --folds, train on all subjects and save that model (calibrated)",
    )
    parser.add_argument("--epochs", type=int, help="epochs (default: the architecture's recipe)")
    parser.add_argument("--batch-size", type=int, help="batch size (default: the architecture's recipe)")
    parser.add_argument("--learning-rate", type=float, help="Adam learning rate (default: the recipe's)")
    parser.add_argument(
        "--lr-schedule", choices=("plateau", "cosine"), help="learning-rate schedule (default: the recipe's)"
    )
    parser.add_argument(
        "--validation-fraction",
        type=float,
        help="fraction of the training subjects held out for validation (default: the recipe's)",
    )
    parser.add_argument(
        "--members", type=int, help="independently trained copies averaged into one model (default: recipe's)"
    )
    parser.add_argument("--test-size", type=float, default=0.33, help="test fraction of one split")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--group-pattern",
        default=None,
        help="regex whose first group names an image's subject (default: CK+ 'S<nnn>_')",
    )
    parser.add_argument("--out", type=Path, default=Path("models"), help="output folder")
    parser.add_argument("--name", help="output file stem (default: ARCH-SPLIT or ARCH-cvK)")
    parser.add_argument(
        "--list-archs", action="store_true", help="print each architecture and its parameters"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from training.architectures import ARCHITECTURES, get_architecture

    if args.list_archs:
        for arch in ARCHITECTURES.values():
            print(f"{arch.name}\t{arch.count_params()}")
        return 0
    if args.data is None or args.arch is None:
        _parser().error("--data and --arch are required (or --list-archs)")
    if args.folds < 0 or args.folds == 1:
        _parser().error("--folds must be 0 (one split) or at least 2")
    if args.members is not None and args.members < 1:
        _parser().error("--members must be at least 1")
    if args.validation_fraction is not None and not 0 <= args.validation_fraction < 1:
        _parser().error("--validation-fraction must be in [0, 1)")
    from training.dataset import CKPLUS_SUBJECT_PATTERN, DatasetError, group_by_pattern, load_dataset
    from training.run import RunConfig, run_cross_validation, run_split

    try:
        arch = get_architecture(args.arch)
    except KeyError as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    overrides = {
        k: v
        for k, v in (
            ("epochs", args.epochs),
            ("batch_size", args.batch_size),
            ("learning_rate", args.learning_rate),
            ("members", args.members),
            ("lr_schedule", args.lr_schedule),
            ("validation_fraction", args.validation_fraction),
        )
        if v is not None
    }
    recipe = dataclasses.replace(arch.recipe, **overrides)
    protocol = "subject" if args.folds else args.split
    name = args.name or (f"{arch.name}-cv{args.folds}" if args.folds else f"{arch.name}-{protocol}")
    config = RunConfig(
        arch,
        recipe,
        protocol,
        args.out,
        name,
        seed=args.seed,
        test_size=args.test_size,
        folds=args.folds,
        max_folds=args.max_folds,
        final=args.final,
        data_name=args.data.name,
    )
    try:
        dataset = load_dataset(args.data)
        needs_groups = protocol == "subject" or recipe.validation_fraction > 0
        pattern = args.group_pattern or CKPLUS_SUBJECT_PATTERN
        try:
            groups = dataset.groups(group_by_pattern(pattern))
        except DatasetError:
            if needs_groups:
                raise
            groups = None  # a random split needs none; with them it reports the subjects it leaks
        if args.folds and groups is not None and args.folds > len(set(groups)):
            raise DatasetError(f"--folds {args.folds} is more than the {len(set(groups))} subjects")
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path, reason in dataset.skipped:
        print(f"warning: skipped unreadable image {path}: {reason}", file=sys.stderr)
    print(f"{args.data}: {len(dataset)} images, classes {dataset.class_names}")
    if args.folds:
        run_cross_validation(config, dataset, groups)
    else:
        run_split(config, dataset, groups)
    return 0


if __name__ == "__main__":
    sys.exit(main())
