"""``estimate``: the pre-flight cost of a run (fit time, peak memory, artefacts) before queueing.

Examples::

    python -m recsys_core estimate tall --model ials --param factors=128
    python -m recsys_core estimate wide --model ease --json
"""

from __future__ import annotations

import argparse
from typing import Any

from recsys_core.cli.main import print_json, workspace_of


def register(subparsers: Any) -> None:
    """Add ``estimate`` to the top-level parser."""
    from recsys_core.split_spec import PROTOCOLS

    p = subparsers.add_parser(
        "estimate",
        help="expected fit time, peak host/device memory and artefact size of a run",
        description="From the dataset's sizes, the split and the device, with per-model "
        "formulas calibrated on this machine (recsys_core/estimate_models.py). Exit status 3 "
        "when the run would not fit in the memory free now (the reason and the nearest "
        "setting that fits are printed).",
    )
    p.add_argument("dataset", help="workspace dataset name or id")
    p.add_argument("--model", required=True, help="registry key, e.g. ials")
    p.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE", help="hyperparameter"
    )
    p.add_argument("--split", choices=PROTOCOLS, default="random", help="protocol (random)")
    p.add_argument("--test-ratio", type=float, default=0.2, help="test share (0.2)")
    p.add_argument("--valid-ratio", type=float, default=0.1, help="validation share (0.1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    p.set_defaults(func=cmd_estimate)


def cmd_estimate(args: argparse.Namespace) -> int:
    from recsys_core.cli.eval_cmd import split_params
    from recsys_core.config import config_to_dict, parse_params
    from recsys_core.estimate import estimate_spec
    from recsys_core.jobs.spec import RunSpec
    from recsys_core.models import get_model

    cls = get_model(args.model)
    config = parse_params(cls.Config, split_params(args.param, [cls.name])[cls.name])
    split = {"protocol": args.split, "test_ratio": args.test_ratio}
    split["valid_ratio"] = args.valid_ratio
    spec = RunSpec(
        dataset=args.dataset,
        model=cls.name,
        split=split,
        config=config_to_dict(config),
        device=args.device,
    )
    est = estimate_spec(workspace_of(args), spec)
    if est is None:
        print(f"{cls.name}: no cost formula (a plugin model); it is not checked before a run")
        return 0
    if args.json:
        print_json(est.to_dict())
        return 0 if est.fits else 3
    s = est.shape
    print(
        f"{est.model} on {s.n_users:,} users x {s.n_items:,} items, {s.n_train:,} training "
        f"interactions ({args.split} split), device {est.device}"
    )
    rows = [
        ("fit time", _time(est.fit_seconds)),
        ("evaluation time", _time(est.eval_seconds)),
        ("peak host memory", _gb(est.peak_host_bytes, est.have_host_bytes)),
        ("model's own peak", _gb(est.model_peak_bytes, None)),
    ]
    if est.peak_device_bytes:
        rows.append(("peak device memory", _gb(est.peak_device_bytes, est.have_device_bytes)))
    rows.append(("artefacts on disk", _gb(est.artefact_bytes, None)))
    for label, value in rows:
        print(f"  {label:<20} {value}")
    if not est.fits:
        print(f"refused: {est.reason}")
        print(f"  try: {est.suggestion}")
        return 3
    print("fits: yes")
    return 0


def _time(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _gb(n_bytes: int, have: int | None) -> str:
    from recsys_core.memory import format_gb

    text = format_gb(n_bytes)
    return f"{text} (of {format_gb(have)} free)" if have is not None else text
