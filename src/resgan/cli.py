"""``resgan`` command line: train | generate | export (more verbs join as they land).

Every user error is one line on stderr and exit code 2; nothing half-written is left.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from .errors import ResganError


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import resume_config, train

    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    cfg = load_config(args.config, overrides)
    if args.steps is not None:
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=args.steps))
    if args.resume:
        cfg = resume_config(Path(args.out), cfg, args.steps)
    ckpt = train(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    print(f"checkpoint: {ckpt}\nreport: {Path(args.out) / 'report.html'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .generate import generate, load_generator, parse_seeds, write_images

    seeds = parse_seeds(args.seeds)
    G, _ = load_generator(args.source, args.device)
    images, _ = generate(G, seeds, args.class_idx, args.trunc)
    paths = write_images(images, seeds, Path(args.out))
    print(f"wrote {paths[0]}" if len(paths) == 1 else f"wrote {len(paths)} images to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .generate import export_generator

    print(f"wrote {export_generator(args.source, Path(args.out), half=not args.fp32)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resgan", description="Residual GANs for image generation and restoration.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model from a config preset or YAML file")
    t.add_argument("config", help="preset name (digits, mnist, cifar10_sngan, ...) or a YAML file")
    t.add_argument("--out", required=True, help="run directory (holds latest.safetensors, samples, report.html)")
    t.add_argument("--steps", type=int, help="total generator steps of the run (a resumed run continues up to N)")
    t.add_argument("--seed", type=int)
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. train.lr_g=1e-4")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    g = sub.add_parser("generate", help="sample images from a trained generator")
    g.add_argument("source", help="run directory, checkpoint file or built-in name (mnist)")
    g.add_argument("--seeds", default="0-63", help="e.g. 0-63 or 1,5,9 (one image per seed)")
    g.add_argument("--class", dest="class_idx", type=int, help="class index for conditional models")
    g.add_argument("--trunc", type=float, help="truncation threshold for z (e.g. 1.0)")
    g.add_argument("--out", required=True, help="a .png path writes one grid; a folder gets one PNG per seed")
    g.add_argument("--device", default="cpu")
    g.set_defaults(func=cmd_generate)

    e = sub.add_parser("export", help="write a run's EMA generator alone (the built-in weights format)")
    e.add_argument("source")
    e.add_argument("--out", required=True)
    e.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    e.set_defaults(func=cmd_export)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ResganError as e:
        print(f"resgan: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("resgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
