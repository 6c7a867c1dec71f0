"""``resgan restore`` on files: find the inputs and their masks, name every output, check every planned
output against every input (images and masks) and against each other before anything is written, then
restore and write each file (the one place restore writes). A bad file is reported (``on_result``) and
the others go on; the library prints nothing.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import atomic_write_bytes, prepare_dir
from ..data import IMAGE_EXTS
from ..errors import ResganError
from ..imageio import DEFAULT_MAX_PIXELS, check_holds, encode, list_folder, read_image, read_mask
from .restore import Models, RestoreRequest, restore_one

MASK_RE = re.compile(r"_mask\d*$")  # LaMa's convention: NAME_mask.png, NAME_mask001.png beside NAME.png


@dataclass
class FileJob:
    image: Path
    mask: Path | None
    dest: Path
    error: str | None = None  # known before any work (e.g. no mask found): reported, not run


@dataclass
class FileResult:
    job: FileJob
    written: Path | None  # None: failed
    seconds: float
    error: str | None = None  # one line, naming the file


def find_masks(image: Path, mask_arg: str | None) -> list[Path]:
    """The mask(s) of ``image``: --mask (a file, or a folder holding a same-named mask), else LaMa's
    convention: ``NAME_mask*.png`` beside ``NAME.png``."""
    if mask_arg:
        p = Path(mask_arg)
        if p.is_dir():
            cands = [q for q in sorted(p.iterdir()) if q.suffix.lower() in IMAGE_EXTS
                     and (q.stem == image.stem or MASK_RE.sub("", q.stem) == image.stem)]
            if not cands:
                raise ResganError(f"{image}: no mask named {image.stem}.* in {p}")
            return cands[:1]
        if not p.is_file():
            raise ResganError(f"--mask {p}: no such file or folder")
        return [p]
    cands = sorted(q for q in image.parent.glob(f"{image.stem}_mask*") if q.suffix.lower() in IMAGE_EXTS
                   and MASK_RE.search(q.stem))
    if not cands:
        raise ResganError(f"{image}: no mask (give --mask, or put {image.stem}_mask.png beside it)")
    return cands


def collect_inputs(inputs: list[str], task: str) -> list[Path]:
    """Every input file (folders listed, not recursively, skipping LaMa-style ``*_mask*`` files for
    inpainting); the same file given twice counts once."""
    out: list[Path] = []
    for s in inputs:
        p = Path(s)
        if p.is_dir():
            files = list_folder(p)
            out += [f for f in files if task != "inpaint" or not MASK_RE.search(f.stem)]
        else:
            out.append(p)
    seen, unique = set(), []
    for p in out:
        if _identity(p) not in seen:
            seen.add(_identity(p))
            unique.append(p)
    return unique


def _identity(p: Path) -> tuple:
    """One key per file: (device, inode) where it exists (links and ``..`` included), else its full path."""
    try:
        st = p.stat()
        return ("file", st.st_dev, st.st_ino)
    except OSError:
        return ("path", str(p.resolve()))


def _output_file(inputs: list[str], files: list[Path], out: Path) -> Path | None:
    """``--out`` as the output file itself: one input file and an image-file name that is not an existing
    folder (``restore x.png --out y.png``). None: a folder."""
    if out.is_dir() or out.suffix.lower() not in IMAGE_EXTS:
        return None
    if len(inputs) != 1 or len(files) != 1 or Path(inputs[0]).is_dir():
        raise ResganError(f"--out {out}: a file name takes one input file; for several inputs or a folder give "
                          "an output folder (without an image suffix)")
    return out


def plan(req: RestoreRequest, inputs: list[str], out: str | Path, mask_arg: str | None = None) -> list[FileJob]:
    """Every (image, mask, output) of a ``resgan restore`` call. Refused as a whole, before anything is
    written, when an output would overwrite an input (image or mask) or another output."""
    files = collect_inputs(inputs, req.task)
    if not files:
        raise ResganError(f"no input images in {', '.join(map(str, inputs))}")
    out_file = _output_file(inputs, files, Path(out))
    out_dir = out_file.parent if out_file is not None else Path(out)
    jobs: list[FileJob] = []
    for f in files:
        dest = out_file if out_file is not None else out_dir / f.name
        if req.task != "inpaint":
            jobs.append(FileJob(f, None, dest))
            continue
        try:
            masks = find_masks(f, mask_arg)
        except ResganError as e:
            jobs.append(FileJob(f, None, dest, str(e)))
            continue
        for m in masks:  # several LaMa masks: one output each, named after its mask
            jobs.append(FileJob(f, m, dest if len(masks) == 1 else dest.with_name(m.stem + dest.suffix)))
    check_collisions(jobs)
    prepare_dir(out_dir)  # one line for a place that cannot be written, not one per file
    return jobs


def check_collisions(jobs: list[FileJob]) -> None:
    """No output may be an input (any job's image or mask) or another job's output: refuse, saying which."""
    inputs: dict[tuple, str] = {}
    for j in jobs:
        inputs.setdefault(_identity(j.image), f"the input image {j.image}")
        if j.mask is not None:
            inputs.setdefault(_identity(j.mask), f"the mask {j.mask}")
    outputs: dict[tuple, FileJob] = {}
    for j in jobs:
        if j.error:
            continue
        key = _identity(j.dest)
        if key in inputs:
            raise ResganError(f"{j.dest}: the output of {j.image} would overwrite {inputs[key]}; choose another --out "
                              "(nothing was written)")
        if key in outputs:
            o = outputs[key]
            what = (f"{o.image} and {j.image}" if o.image != j.image else f"{j.image} with masks {o.mask} and {j.mask}")
            raise ResganError(f"{what} would both be written to {j.dest}; restore them into separate --out folders "
                              "(nothing was written)")
        outputs[key] = j


def run(jobs: list[FileJob], models: Models, req: RestoreRequest, max_pixels: int = DEFAULT_MAX_PIXELS,
        on_result: Callable[[FileResult], None] | None = None) -> list[FileResult]:
    """Restore and write every job; a bad file is a failed result (its error names it), the rest go on."""
    results, cached = [], None
    for job in jobs:
        t0 = time.perf_counter()
        try:
            if job.error:
                raise ResganError(job.error)
            if cached is None or cached[0] != job.image:  # several masks of one image: read it once
                cached = (job.image, read_image(job.image, max_pixels))
            loaded = cached[1]
            check_holds(loaded.mode, job.dest)  # before the work: .jpg cannot hold alpha, ...
            hole = read_mask(job.mask, loaded.size, max_pixels) if job.mask is not None else None
            q, _ = restore_one(models, req, loaded, hole)
            atomic_write_bytes(job.dest, encode(q, loaded.mode, job.dest, req.quality))
            r = FileResult(job, job.dest, time.perf_counter() - t0)
        except ResganError as e:
            msg = str(e)
            r = FileResult(job, None, time.perf_counter() - t0, msg if msg.startswith(str(job.image))
                           else f"{job.image}: {msg}")
        results.append(r)
        if on_result is not None:
            on_result(r)
    return results
