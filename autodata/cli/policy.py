"""``autodata policy show|apply|convert|list``: look at, try and make augmentation policies.

A POLICY is a policy or schedule file, the name of a shipped one (``autodata policy list``),
or a timm-style string (``rand-m9-n2``, ``trivial``; see :mod:`autodata.augment.shipped`).
"""
from __future__ import annotations

import argparse
import os
import textwrap
from typing import Any

from autodata.cli._common import say

__all__ = ["describe", "load_any_policy", "register"]

EXAMPLES = """examples:
  autodata policy list
  autodata policy show autoaugment_cifar10 --top 5
  autodata policy show pba_rcifar10_200 --epoch 150 --plot schedule.png
  autodata policy apply randaugment --data digits --out ra_digits.png
  autodata policy apply policies/trivialaugment.json --data cifar10 --data-root ../shared/data --out ta.png
  autodata policy convert rand-m9-n2 --out rand_m9_n2.json
  autodata policy convert --from-pba-log ../shared/data/pba/rcifar10_16_wrn.txt --epochs 200 --out pba.json
"""


# ------------------------------------------------------------------------------ loading
def load_any_policy(spec: str) -> Any:
    """A :class:`Policy`, :class:`PiecewiseSchedule` or :class:`PBAPolicy` from a file, a shipped name or a string.

    Raises:
        ValueError: the file's content is not a policy or schedule, or ``spec`` is none of the three.
    """
    from autodata.augment import policy_from_dict
    from autodata.augment.shipped import policy_from_string, resolve_policy_path, shipped_names
    from autodata.schedules import PBAPolicy, PiecewiseSchedule

    text = os.fspath(spec)
    try:
        path = resolve_policy_path(text)
    except FileNotFoundError:
        if text in ("rand", "trivial") or text.startswith("rand-"):
            return policy_from_string(text)
        raise ValueError(
            f"POLICY must be a policy or schedule file, a shipped name {list(shipped_names())} or a string such as "
            f"'rand-m9-n2' or 'trivial', but got {text!r}."
        ) from None
    from autodata._json import read_json_file

    data = read_json_file(path)
    kind = data.get("format") if isinstance(data, dict) else None
    source = os.fspath(path)
    if kind == "autodata.policy":
        return policy_from_dict(data, source)
    if kind == "autodata.schedule":
        return PiecewiseSchedule.load(path)
    if kind == "autodata.pba_policy":
        return PBAPolicy.from_dict(data, source)
    raise ValueError(f"{source}: format must be 'autodata.policy', 'autodata.schedule' or 'autodata.pba_policy', "
                     f"but got {kind!r}.")


# ------------------------------------------------------------------------------ show
def _sign(signed: bool, sign_probability: float) -> tuple[str, str]:
    """The sign's prefix and, for a learned sign that is neither a fair coin nor sure, its note."""
    if not signed:
        return "", ""
    if sign_probability == 1.0:
        return "+", ""
    if sign_probability == 0.0:
        return "-", ""
    note = "" if sign_probability == 0.5 else f" (+ with p {sign_probability:.2f})"
    return "±", note


def _value(name: str, magnitude: float, sampling: str, sign_probability: float = 0.5) -> str:
    """The op's own argument at ``magnitude`` (degrees, bits, ...), readable, with its sign."""
    from autodata.augment import OPS

    spec = OPS[name]
    if not spec.uses_magnitude:
        return "-"
    v = spec.low + magnitude * (spec.high - spec.low)
    sign, note = _sign(spec.signed, sign_probability)
    return _described(name, v, sign, sampling) + note


def _described(name: str, v: float, sign: str, sampling: str) -> str:
    """The op's argument ``v`` in its own words (degrees, bits, a factor...)."""
    upto = "up to " if sampling == "uniform" else ""
    if name.startswith("Shear"):
        text = f"shear {sign}{v:.2f}"
    elif name == "Rotate":
        text = f"{sign}{v:.1f} degrees"
    elif name.startswith("Translate"):
        text = f"{sign}{v:.0%} of the size"
    elif name in ("Brightness", "Color", "Contrast", "Sharpness"):
        text = f"factor 1 {sign}{v:.2f}"
    elif name == "Posterize":
        return f"{round(v)} bits" if sampling == "fixed" else f"8 down to {round(v)} bits"
    elif name == "Solarize":
        text = f"pixels above {v:.2f}"
    elif name == "Cutout":
        text = f"square {v:.0%} of the size"
    elif name == "CropPad":
        text = f"pad {v:.0%} of the size"
    else:
        text = f"{v:.3g}"
    return upto + text


def _policy_lines(policy: Any, top: int | None) -> list[str]:
    lines = [f"{policy.name} (policy, {len(policy.stages)} stage{'s' * (len(policy.stages) != 1)})"]
    if policy.description:
        lines += textwrap.wrap(policy.description, 100, initial_indent="  ", subsequent_indent="  ")
    for s, stage in enumerate(policy.stages):
        probs = stage.probabilities
        order = sorted(range(len(probs)), key=lambda k: -probs[k])
        shown = order if top is None else order[:top]
        lines += ["", f"stage {s + 1} of {len(policy.stages)}: one of {len(probs)} sub-policies per image"
                      + (f" (the {len(shown)} most likely shown)" if len(shown) < len(order) else ""),
                  f"  {'#':>3}  {'weight':>6}  {'op':<13} {'probability':>11}  {'magnitude':>9}  value"]
        for k in shown:
            for j, op in enumerate(stage.sub_policies[k].ops):
                head = f"  {k + 1:>3}  {probs[k]:6.3f}" if j == 0 else " " * 13
                mag = f"U(0,{op.magnitude:.2f})" if op.magnitude_sampling == "uniform" else f"{op.magnitude:.2f}"
                from autodata.augment import OPS

                mag = mag if OPS[op.name].uses_magnitude else "-"
                lines.append(f"{head}  {op.name:<13} {op.probability:11.2f}  {mag:>9}  "
                             f"{_value(op.name, op.magnitude, op.magnitude_sampling, op.sign_probability)}")
    return lines


def _pba_lines(policy: Any) -> list[str]:
    from autodata.schedules import PBA_OPS

    n = len(PBA_OPS)
    lines = ["PBA policy: 2 copies of 15 ops; per image 0, 1 or 2 ops are applied (probabilities 0.2, 0.3, 0.5)",
             f"  {'op':<13} {'copy':>4}  {'probability':>11}  {'magnitude level':>15}"]
    for e, (op, p, m) in enumerate(policy.entries):
        lines.append(f"  {op:<13} {e // n + 1:>4}  {p / 10:11.1f}  {m:>13}/9")
    return lines


def _pba_summary(policy: Any) -> str:
    applied = [f"{op}(p={p / 10:.1f}, m={m})" for op, p, m in policy.entries if p > 0]
    return ", ".join(applied) if applied else "nothing applied"


def _schedule_lines(schedule: Any, top: int | None) -> list[str]:
    from autodata.augment import Policy

    count = len(schedule.segments)
    lines = [f"{schedule.name or 'schedule'} (schedule, {schedule.num_epochs} epochs, {count} segment{'s' * (count != 1)})"]
    if schedule.description:
        lines += textwrap.wrap(schedule.description, 100, initial_indent="  ", subsequent_indent="  ")
    lines += ["", f"  {'epochs':>9}  policy (op(p=probability, m=magnitude level of 9) for PBA policies)"]
    for seg in schedule.segments:
        span = f"{seg.start}-{seg.stop - 1}"
        if isinstance(seg.policy, Policy):
            text = f"policy {seg.policy.name!r} ({len(seg.policy.stages)} stages; show it with --epoch {seg.start})"
        else:
            text = _pba_summary(seg.policy)
        wrapped = textwrap.wrap(text, 88) or [""]
        lines.append(f"  {span:>9}  {wrapped[0]}")
        lines += [f"  {'':>9}  {rest}" for rest in wrapped[1:]]
    return lines


def describe(policy: Any, top: int | None = None, epoch: int | None = None) -> str:
    """The readable text of a policy, a PBA policy or a schedule (its policy at ``epoch`` if given)."""
    from autodata.augment import Policy
    from autodata.schedules import PBAPolicy, PiecewiseSchedule

    if isinstance(policy, PiecewiseSchedule):
        if epoch is None:
            return "\n".join(_schedule_lines(policy, top)) + "\n"
        head = f"{policy.name or 'schedule'} at epoch {epoch} of {policy.num_epochs}:\n"
        return head + describe(policy.policy_at(epoch), top)
    if epoch is not None:
        raise ValueError(f"--epoch is only for schedules, but got a fixed policy with --epoch {epoch}.")
    if isinstance(policy, Policy):
        return "\n".join(_policy_lines(policy, top)) + "\n"
    if isinstance(policy, PBAPolicy):
        return "\n".join(_pba_lines(policy)) + "\n"
    raise TypeError(f"policy must be a Policy, a PBAPolicy or a PiecewiseSchedule, but got {type(policy).__name__}.")


def _show(args: argparse.Namespace) -> int:
    from autodata.schedules import PiecewiseSchedule

    policy = load_any_policy(args.policy)
    print(describe(policy, args.top, args.epoch), end="", flush=True)
    if args.plot:
        from autodata.runs.plots import plot_policy, plot_schedule

        if isinstance(policy, PiecewiseSchedule) and args.epoch is None:
            plot_schedule(policy, args.plot)
        else:
            shown = policy.policy_at(args.epoch) if isinstance(policy, PiecewiseSchedule) else policy
            plot_policy(shown, args.plot, top=args.top or 30)
        print(f"plot: {args.plot}", flush=True)
    return 0


# ------------------------------------------------------------------------------ apply
def _augment_module(policy: Any, fill: tuple[float, ...]) -> Any:
    from autodata.augment import Policy, PolicyAugment
    from autodata.schedules import PBAAugment

    if isinstance(policy, Policy):
        return PolicyAugment(policy)
    return PBAAugment(policy, crop=False, flip=False, cutout=False, fill=fill)


def _apply(args: argparse.Namespace) -> int:
    from autodata.data import load_dataset
    from autodata.runs.plots import one_per_class, plot_augmented_grid
    from autodata.schedules import PiecewiseSchedule
    from autodata.train.data import normalization_of

    if args.images < 1 or args.copies < 1:
        raise ValueError(f"--images and --copies must be >= 1, but got {args.images} and {args.copies}.")
    policy = load_any_policy(args.policy)
    where = ""
    if isinstance(policy, PiecewiseSchedule):
        epoch = policy.num_epochs - 1 if args.epoch is None else args.epoch
        where = f" at epoch {epoch}"
        name = policy.name or "schedule"
        policy = policy.policy_at(epoch)
    elif args.epoch is not None:
        raise ValueError(f"--epoch is only for schedules, but got a fixed policy with --epoch {args.epoch}.")
    else:
        name = getattr(policy, "name", "pba_policy")
    data = load_dataset(args.data, root=args.data_root, train=True)
    rows = one_per_class(data.labels, limit=args.images)
    module = _augment_module(policy, normalization_of(data).mean)
    out = args.out or f"{name}_{args.data}.png".replace(os.sep, "_")
    names = data.class_names
    labels = [names[k] if names else f"class {k}" for k in data.labels[rows]]
    extra = " (PBA policy ops only, without PBA's crop, flip and Cutout)" if not hasattr(policy, "stages") else ""
    plot_augmented_grid(data.images[rows], module, out, copies=args.copies, seed=args.seed, labels=labels,
                        title=f"{name}{where} on {args.data}: originals and {args.copies} augmented copies{extra}")
    print(f"wrote {out}", flush=True)
    return 0


# ------------------------------------------------------------------------------ convert
def _convert(args: argparse.Namespace) -> int:
    from autodata.augment import Policy, policy_to_json
    from autodata.schedules import schedule_from_pba_log

    if (args.spec is None) == (args.from_pba_log is None):
        raise ValueError("give exactly one source: a string such as 'rand-m9-n2' or 'trivial', or --from-pba-log FILE, "
                         f"but got {'both' if args.spec else 'neither'}.")
    if args.spec is not None and (args.epochs is not None or args.search_epochs is not None):
        raise ValueError("--epochs and --search-epochs are only for --from-pba-log, but got them with "
                         f"{args.spec!r}.")
    if args.out and os.path.exists(args.out) and not args.overwrite:
        raise ValueError(f"--out {args.out} must not exist yet, but it does; pass --overwrite to replace it.")
    if args.from_pba_log is not None:
        if args.epochs is not None and args.epochs < 1:
            raise ValueError(f"--epochs must be >= 1, but got {args.epochs}.")
        if not os.path.isfile(args.from_pba_log):
            raise FileNotFoundError(f"--from-pba-log must be an existing PBA log file, but {args.from_pba_log} does not exist.")
        schedule = schedule_from_pba_log(args.from_pba_log, epochs=args.epochs, search_epochs=args.search_epochs)
        text, what = schedule.to_json(), f"schedule of {schedule.num_epochs} epochs, {len(schedule.segments)} segments"
    else:
        from autodata.augment.shipped import policy_from_string

        policy: Policy = policy_from_string(args.spec)
        text, what = policy_to_json(policy), f"policy {policy.name!r}, {len(policy.stages)} stage(s)"
    if not args.out:
        print(text, end="", flush=True)
        return 0
    from autodata._io import atomic_write_text

    atomic_write_text(args.out, text)
    say(args.quiet, f"wrote {args.out}: {what}")
    return 0


def _list(args: argparse.Namespace) -> int:
    from autodata.augment.shipped import shipped_dirs, shipped_kind, shipped_names, shipped_policy_path

    print(f"shipped policies and schedules ({', '.join(str(d) for d in shipped_dirs()) or 'none found'}):")
    for name in shipped_names():
        kind = shipped_kind(shipped_policy_path(name)).removeprefix("autodata.")
        print(f"  {name:<24} {kind}")
    print("and strings: rand-m<M>-n<N>[-p<P>][-mstd<S>] (timm's RandAugment), trivial")
    return 0


def register(commands: Any) -> None:
    policy = commands.add_parser(
        "policy", help="show, try (a PNG of augmented images) and convert augmentation policies",
        description="Show, try and convert augmentation policies and schedules. POLICY is a file, a shipped "
                    "name (autodata policy list) or a string such as rand-m9-n2 or trivial.",
        epilog=EXAMPLES,
    )
    verbs = policy.add_subparsers(dest="verb", metavar="VERB", required=True, parser_class=type(policy))

    show = verbs.add_parser("show", help="print a policy or schedule as a table", epilog=EXAMPLES)
    show.add_argument("policy", metavar="POLICY")
    show.add_argument("--top", type=int, default=None, help="show only the K most likely sub-policies per stage")
    show.add_argument("--epoch", type=int, default=None, help="for a schedule: show its policy at this epoch (from 0)")
    show.add_argument("--plot", metavar="PNG", help="also draw it into this PNG file (needs matplotlib)")
    show.set_defaults(run=_show)

    apply = verbs.add_parser("apply", help="draw a PNG grid of images and augmented copies", epilog=EXAMPLES)
    apply.add_argument("policy", metavar="POLICY")
    apply.add_argument("--data", default="digits", help="dataset of the images (default: digits, bundled)")
    apply.add_argument("--data-root", default=None, help="folder holding the dataset (default: $AUTODATA_DATA)")
    apply.add_argument("--images", type=int, default=8, help="rows: one image per class, up to this many")
    apply.add_argument("--copies", type=int, default=6, help="augmented copies per image")
    apply.add_argument("--seed", type=int, default=0)
    apply.add_argument("--epoch", type=int, default=None, help="for a schedule: its policy at this epoch (default: the last)")
    apply.add_argument("--out", metavar="PNG", help="the PNG file (default: <policy>_<data>.png)")
    apply.set_defaults(run=_apply)

    convert = verbs.add_parser("convert", help="write a policy or schedule file from a string or a PBA log",
                               epilog=EXAMPLES)
    convert.add_argument("spec", nargs="?", metavar="STRING", help="rand-m<M>-n<N>[-p<P>][-mstd<S>] or trivial")
    convert.add_argument("--from-pba-log", metavar="FILE", help="a PBA schedule log (Ray Tune PBT lines)")
    convert.add_argument("--epochs", type=int, default=None, help="stretch the PBA schedule to this many epochs")
    convert.add_argument("--search-epochs", type=int, default=None,
                         help="epochs of the PBA search (known for PBA's published logs)")
    convert.add_argument("--out", metavar="FILE", help="the JSON file (default: print it)")
    convert.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    convert.add_argument("--quiet", action="store_true")
    convert.set_defaults(run=_convert)

    listing = verbs.add_parser("list", help="the shipped policies and schedules")
    listing.set_defaults(run=_list)
