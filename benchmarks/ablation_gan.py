"""CIFAR-10 recipe ablation at equal CPU time: each candidate trained to one CPU budget, then FID / KID.

Every candidate is trained from scratch by the real CLI (``resgan train``) until its process has used
the same CPU seconds, then its EMA generator is scored by ``resgan evaluate`` against the test split.

    .venv/bin/python benchmarks/ablation_gan.py --keep runs/abl                # 4 candidates, ~2.5 h (see below)
    .venv/bin/python benchmarks/ablation_gan.py --keep runs/abl --candidates "E_ndis3=gan.n_dis=3"
    .venv/bin/python benchmarks/ablation_gan.py --report-only runs/abl --budget 2400   # just the table
    .venv/bin/python benchmarks/ablation_gan.py --base digits --set gan.g_width=8 --set gan.d_width=8 \\
        --set train.steps=1000000 --budget 20 -n 50 --poll 1 --keep /tmp/abl_smoke    # smoke check, ~2 min

Protocol (what the lead first ran by hand, as shell scripts):

* base: the ``cifar10`` preset (class-conditional SN-ResNets at 32 px) with the recipe under test set
  explicitly (G / D width 128 / 128, hinge loss, n_dis 2, DiffAugment color,translation,cutout, Adam 2e-4
  betas 0 / 0.9, batch 64, EMA 0.999 from step 1000: the preset now ships what the ablation chose, so its
  own values may differ) and the changes an equal-time ablation needs: ``train.lr_decay=none`` (no run knows when it
  ends), ``train.steps`` far beyond the budget, ``train.ckpt_every=250``, ``gan.fid_every=0``, and
  ``data.path`` = ``DATA/cifar10_jpeg`` (DATA: --data, else $RESGAN_DATA, else ../shared/data beside the
  repository). ``--base`` names another preset or YAML instead (used as it is, without those changes);
  ``--set`` adds overrides to every candidate.
* candidates (``--candidates NAME=override;override,NAME=...``, each a set of ``--set`` overrides on the
  base): A_base (the base), B_ndis1 (``gan.n_dis=1``), C_noaug (``gan.diffaug=''``), D_g256
  (``gan.g_width=256``).
* training: ``OMP_NUM_THREADS=1 resgan train BASE --out DIR/NAME --threads 1 --quiet --set ...``; its
  user + system CPU time is read from /proc/PID/stat every ``--poll`` seconds (5), and once it reaches
  ``--budget`` CPU-seconds (3600) the process gets one SIGINT: it finishes its step, saves
  latest.safetensors and exits 130. CPU time, not wall time, makes the runs equal whatever else loads
  the machine, so ``--parallel`` (2) candidates train side by side. The CPU time of a finished run (from
  wait4, so the save after the SIGINT counts too) goes to DIR/NAME.budget.json; the logs to
  DIR/NAME.train.log and DIR/NAME.eval.log. The budget includes the process's start-up (reading and
  decoding the 50,000 training JPEGs), the same for every candidate.
* scoring: ``OMP_NUM_THREADS=1 resgan evaluate DIR/NAME TEST -n 5000 --metrics fid,kid --fast --threads 1
  --json DIR/NAME/fid.json``: 5,000 class-balanced EMA samples (seeds 0..4999) against 5,000 images of
  the test split (TEST: ``folder:DATA/cifar10_jpeg/test``; for another base its test split where one is
  found, else ``--test``), bf16 Inception (``--fast``; FID moves slightly against fp32, the same for
  every candidate, so the ranking stands; absolute numbers are not the papers' either: JPEG q75 data).
* the table: candidate, its overrides, G / D parameters (the nets built by resgan.gan.models from the
  checkpoint's config), the steps the checkpoint reached, CPU-s and CPU-s per step, images seen (real
  images the discriminator drew: steps x n_dis x batch), FID, KID (+- std over 100 subsets of 1,000);
  printed as markdown and written as JSON (``--json``, default DIR/ablation.json when it trains).

Runs are reused: with ``--keep DIR`` a candidate whose DIR/NAME already holds fid.json is only read; one
with a checkpoint but no fid.json is only evaluated (a run this script stopped before its budget, by
Ctrl-C or a failure, is refused instead: remove it to train it again). Without --keep the runs go to a
temporary folder, removed at the end. ``--report-only DIR`` trains and evaluates nothing: it reads the
runs in DIR (the candidates', and any other run folder there) and prints the table; a run without a
NAME.budget.json (trained by hand) is assumed to have used ``--budget`` CPU-seconds, marked ``~``.

Wall time with the defaults on an otherwise idle 2-core machine: two rounds of two runs of 3,600
CPU-seconds (~1 h each) plus ~6 min of 1-thread Inception per candidate, ~2.5 h in all. A busy machine
stretches the wall time, not the result. Ctrl-C stops the training runs the same way (saved, exit 130)
and the script exits 130.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from resgan.checkpoint import LATEST, training_header
from resgan.config import load_config, parse_override, stored_config
from resgan.gan.models import build_discriminator, build_generator

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CANDIDATES = "A_base=,B_ndis1=gan.n_dis=1,C_noaug=gan.diffaug='',D_g256=gan.g_width=256"
BASE_PRESET = "cifar10"
# the recipe under test, pinned (the preset ships the ablation's outcome, so it may differ from this base) ...
BASE_RECIPE = ["data.name=cifar10", "data.resolution=32", "data.channels=3", "data.conditional=true",
               "gan.z_dim=128", "gan.g_width=128", "gan.d_width=128", "gan.loss=hinge", "gan.n_dis=2",
               "gan.diffaug=color,translation,cutout", "train.batch_size=64", "train.lr_g=2.0e-4",
               "train.lr_d=2.0e-4", "train.beta1=0.0", "train.beta2=0.9", "train.ema_decay=0.999",
               "train.ema_start=1000"]
# ... and what an equal-CPU-time ablation changes (data.path is added from --data)
BASE_SETS = [*BASE_RECIPE, "train.lr_decay=none", "train.steps=1000000", "train.ckpt_every=250", "gan.fid_every=0"]
FID_FILE = "fid.json"
PR_SET_PDEATHSIG = 1


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_candidates(text: str) -> list[tuple[str, list[str]]]:
    """``NAME=override;override,NAME=...`` -> [(name, overrides)]. A comma starts a new candidate only
    where a name (no dot) and ``=`` follow, so values with commas (gan.diffaug=color,cutout) stay whole."""
    out = []
    for part in re.split(r",(?=[\w-]+=)", text.strip()):
        if not part:
            continue
        name, sep, rest = part.partition("=")
        if not sep or not re.fullmatch(r"[\w-]+", name):
            raise ValueError(f"candidate {part!r} must be NAME=override;override (NAME: letters, digits, _ or -)")
        sets = [s.strip() for s in rest.split(";") if s.strip()]
        for s in sets:
            parse_override(s)  # key=value, else the same error resgan train would give
        out.append((name, sets))
    names = [n for n, _ in out]
    if not out or len(set(names)) != len(names):
        raise ValueError(f"--candidates {text!r}: give at least one, each name once")
    return out


def data_root(arg: str | None) -> Path:
    return Path(arg or os.environ.get("RESGAN_DATA") or REPO.parent / "shared" / "data")


def test_reference(cfg) -> str | None:
    """The test split of the base's training data, as an evaluate spec (None: not found)."""
    d = cfg.data
    if d.name == "digits":
        return "digits"  # no split: the same 1,797 images
    path = Path(d.path) if d.path else None
    if d.name == "folder" and path is not None:
        return f"folder:{path.parent / 'test'}" if path.name == "train" and (path.parent / "test").is_dir() else None
    if path is None and os.environ.get("RESGAN_DATA"):
        from resgan.data import data_root as resgan_root
        path = resgan_root(d)
    if d.name in ("cifar10", "cifar100") and path is not None and (path / "test").is_dir():
        return f"folder:{path / 'test'}"  # a JPEG folder with train/ and test/
    return f"{d.name}:{path or ''}:test"


def cpu_seconds(pid: int) -> float:
    """user + system CPU time of a running process, from /proc/PID/stat (0 where it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


@dataclass
class Job:
    """One candidate: train (unless reused), then evaluate (unless fid.json exists)."""
    name: str
    sets: list[str]
    run: Path
    phase: str = ""  # train, eval, done
    proc: subprocess.Popen | None = None
    log_file: object = None
    t0: float = 0.0
    cpu: float = 0.0
    signalled: bool = False  # this script sent its process SIGINT (train) or SIGTERM (evaluate)
    stopped: bool = False  # ... the SIGINT of the budget
    error: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def record(self) -> Path:
        return self.run.parent / f"{self.name}.budget.json"


class Ablation:
    def __init__(self, args, base: str, base_sets: list[str], test: str, root: Path):
        self.args, self.base, self.base_sets, self.test, self.root = args, base, base_sets, test, root
        self.exe = str(Path(sys.executable).with_name("resgan"))
        self.env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.stop_requested = False
        libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child
        self.die_with_parent = lambda: libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)

    def all_sets(self, job: Job) -> list[str]:
        return [*self.base_sets, *self.args.set, *job.sets]

    def first_phase(self, job: Job) -> str:
        """train, eval or done for a run folder as it is now; sets job.error for a run it refuses."""
        if (job.run / FID_FILE).is_file():
            log(f"{job.name}: reusing {job.run / FID_FILE}")
            return "done"
        if (job.run / LATEST).is_file():
            rec = read_json(job.record)
            if rec is not None and rec.get("status") not in ("budget", "finished"):
                job.error = (f"{job.run} was stopped before its budget ({rec.get('status')}, "
                             f"{rec.get('cpu_s', 0):.0f} of {rec.get('budget', 0):g} CPU-s): remove it to train "
                             "it again")
                return "done"
            log(f"{job.name}: {job.run} holds a trained run; evaluating it")
            return "eval"
        return "train"

    def start(self, job: Job) -> None:
        if job.phase == "train":
            cmd = [self.exe, "train", self.base, "--out", str(job.run), "--threads", "1", "--quiet"]
            for s in self.all_sets(job):
                cmd += ["--set", s]
            out = job.run.parent / f"{job.name}.train.log"
            write_json(job.record, {"candidate": job.name, "overrides": job.sets, "budget": self.args.budget,
                                    "status": "training", "command": cmd})
        else:
            cmd = [self.exe, "evaluate", str(job.run), self.test, "-n", str(self.args.n), "--metrics", "fid,kid",
                   "--fast", "--threads", "1", "--quiet", "--json", str(job.run / FID_FILE)]
            out = job.run.parent / f"{job.name}.eval.log"
        log(f"{job.name}: " + " ".join(cmd))
        job.log_file = open(out, "w")
        job.proc = subprocess.Popen(cmd, env=self.env, stdout=job.log_file, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=self.die_with_parent)
        job.t0, job.cpu, job.stopped, job.signalled = time.perf_counter(), 0.0, False, False

    def check(self, job: Job, stopping: bool = False) -> bool:
        """Polls a job's process (SIGINT at the budget, or when ``stopping``); True once it has exited
        (then handled)."""
        pid, status, usage = os.wait4(job.proc.pid, os.WNOHANG)
        if pid == 0:
            if job.phase == "train":
                job.cpu = cpu_seconds(job.proc.pid)
                if not job.signalled and (job.cpu >= self.args.budget or stopping):
                    job.proc.send_signal(signal.SIGINT)  # once: a second one stops the trainer without saving
                    job.signalled, job.stopped = True, not stopping
                    if job.stopped:
                        log(f"{job.name}: {job.cpu:.0f} CPU-s used: SIGINT (saves and exits)")
            elif stopping and not job.signalled:
                job.proc.terminate()
                job.signalled = True
            return False
        rc = os.waitstatus_to_exitcode(status)
        job.proc.returncode = rc
        job.log_file.close()
        wall = time.perf_counter() - job.t0
        logname = job.log_file.name
        if job.phase == "train":
            cpu = usage.ru_utime + usage.ru_stime
            state = ("budget" if job.stopped and rc == 130 else "finished" if rc == 0
                     else "interrupted" if rc == 130 else "failed")
            rec = read_json(job.record) or {}
            write_json(job.record, {**rec, "status": state, "rc": rc, "cpu_s": round(cpu, 2),
                                    "wall_s": round(wall, 1)})
            log(f"{job.name}: training ended ({state}, rc {rc}) after {cpu:.0f} CPU-s, {wall:.0f} s wall")
            if state in ("budget", "finished") and (job.run / LATEST).is_file():
                job.phase = "done" if self.stop_requested else "eval"
            else:
                job.error = f"training {state} (rc {rc}): see {logname}"
                job.phase = "done"
        else:
            if rc or not (job.run / FID_FILE).is_file():
                job.error = f"evaluate failed (rc {rc}): see {logname}"
            else:
                log(f"{job.name}: evaluated in {wall:.0f} s: {summary(read_json(job.run / FID_FILE))}")
            job.phase = "done"
        job.proc = None
        return True

    def run(self, jobs: list[Job]) -> bool:
        """Runs every job, --parallel at a time; False when Ctrl-C (SIGINT) stopped them."""
        def request_stop(signum, frame) -> None:
            self.stop_requested = True
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a second Ctrl-C: at once

        for job in jobs:
            job.phase = self.first_phase(job)
        waiting = [j for j in jobs if j.phase != "done"]
        active: list[Job] = []
        stopping = False
        previous = signal.signal(signal.SIGINT, request_stop)
        try:
            while waiting or active:
                while waiting and len(active) < self.args.parallel and not self.stop_requested:
                    job = waiting.pop(0)
                    self.start(job)
                    active.append(job)
                if self.stop_requested and not stopping:
                    log("interrupted: stopping the runs (training saves its checkpoint)")
                    for job in active + waiting:
                        job.error = job.error or "interrupted"
                    stopping, waiting = True, []
                time.sleep(0.5 if self.stop_requested else self.args.poll)
                for job in list(active):
                    if self.check(job, self.stop_requested):
                        if job.phase == "done" or self.stop_requested:
                            active.remove(job)
                        else:  # trained: its evaluation keeps the slot
                            self.start(job)
        finally:
            signal.signal(signal.SIGINT, previous)
        return not self.stop_requested


def summary(fid: dict | None) -> str:
    if not fid:
        return "?"
    return f"FID {fid.get('fid', float('nan')):.2f}, KID {fid.get('kid', float('nan')):.4f}"


def run_row(name: str, sets: list[str] | None, run: Path, budget: float, error: str = "") -> dict:
    """What the table says about one run folder (read only)."""
    row: dict = {"candidate": name, "overrides": sets, "run": str(run)}
    rec = read_json(run.parent / f"{name}.budget.json")
    if sets is None:
        row["overrides"] = rec.get("overrides") if rec else None
    meta = training_header(run / LATEST) if (run / LATEST).is_file() else None
    if meta is None:
        row["status"] = error or "not run"
        return row
    cfg = stored_config(meta["config"])
    row["g_params"] = sum(p.numel() for p in build_generator(cfg).parameters())
    row["d_params"] = sum(p.numel() for p in build_discriminator(cfg).parameters())
    row["steps"] = steps = int(meta.get("step", 0))
    row["images_seen"] = steps * cfg.gan.n_dis * cfg.train.batch_size
    if rec and rec.get("cpu_s"):
        row["cpu_s"], row["cpu_s_estimated"] = float(rec["cpu_s"]), False
        row["wall_s"] = rec.get("wall_s")
        if rec.get("budget") != budget:
            row.setdefault("notes", []).append(f"trained with a budget of {rec.get('budget', 0):g} CPU-s")
        if rec.get("status") == "finished":
            row.setdefault("notes", []).append("reached train.steps before the budget")
    else:
        row["cpu_s"], row["cpu_s_estimated"] = float(budget), True
    row["cpu_s_per_step"] = row["cpu_s"] / steps if steps else None
    mismatch = []
    for s in row["overrides"] or []:
        keys, want = parse_override(s)
        node = dict(meta["config"])
        for k in keys:
            node = node.get(k) if isinstance(node, dict) else None
        if not same(node, want):
            mismatch.append(f"{'.'.join(keys)} is {node!r} in the run")
    if mismatch:
        row.setdefault("notes", []).extend(mismatch)
    fid = read_json(run / FID_FILE)
    if fid:
        row.update({k: fid.get(k) for k in ("fid", "kid", "kid_std", "n_a", "n_b", "mode", "b")})
        row["status"] = error or "ok"
    else:
        row["status"] = error or "not evaluated"
    return row


def same(have, want) -> bool:
    """Whether a run's config value is the override's (YAML leaves 2e-4 a string; the trainer reads a number)."""
    if have == want or (want is None and have in ("", None)):
        return True
    try:
        return isinstance(want, str) and float(want) == float(have)
    except (TypeError, ValueError):
        return False


def count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.1f}k"


def markdown(rows: list[dict]) -> str:
    head = ["candidate", "overrides", "G params", "D params", "steps", "CPU-s", "CPU-s / step", "images seen",
            "FID", "KID", "notes"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        sets = r.get("overrides")
        cells = [r["candidate"], "?" if sets is None else ("; ".join(f"`{s}`" for s in sets) or "(base)")]
        if "steps" in r:
            est = "~" if r["cpu_s_estimated"] else ""
            cells += [count(r["g_params"]), count(r["d_params"]), f"{r['steps']:,}", f"{est}{r['cpu_s']:,.0f}",
                      f"{est}{r['cpu_s_per_step']:.3g}" if r["cpu_s_per_step"] else "",
                      f"{r['images_seen']:,}"]
        else:
            cells += [""] * 6
        cells += [f"{r['fid']:.2f}" if r.get("fid") is not None else "",
                  f"{r['kid'] * 1e3:.1f} +- {r['kid_std'] * 1e3:.1f}" if r.get("kid") is not None else ""]
        notes = ([] if r["status"] == "ok" else [r["status"]]) + r.get("notes", [])
        cells.append("; ".join(notes))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def table_rows(candidates: list[tuple[str, list[str]]], folder: Path, budget: float,
               errors: dict[str, str] | None = None, extras: bool = False) -> list[dict]:
    rows = [run_row(n, s, folder / n, budget, (errors or {}).get(n, "")) for n, s in candidates]
    if extras:  # other run folders in DIR
        known = {n for n, _ in candidates}
        for d in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in known and (p / LATEST).is_file()):
            rows.append(run_row(d.name, None, d, budget))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", help=f"preset or YAML every candidate starts from, used as it is (default: the "
                                   f"{BASE_PRESET} preset with {' '.join(BASE_SETS)} data.path=DATA/cifar10_jpeg)")
    ap.add_argument("--data", help="data folder of the default base (default: $RESGAN_DATA, else ../shared/data)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="an override for every candidate, after the base's (repeatable)")
    ap.add_argument("--candidates", default=DEFAULT_CANDIDATES,
                    help=f"NAME=override;override,NAME=... (default: {DEFAULT_CANDIDATES})")
    ap.add_argument("--budget", type=float, default=3600.0, help="CPU-seconds of each training run (default 3600)")
    ap.add_argument("--poll", type=float, default=5.0, help="seconds between CPU-time readings (default 5)")
    ap.add_argument("--parallel", type=int, default=2, help="candidates trained / evaluated at once (default 2)")
    ap.add_argument("-n", type=int, default=5000, help="generated and test images of FID / KID (default 5000)")
    ap.add_argument("--test", help="evaluate's reference spec (default: the base data's test split)")
    ap.add_argument("--keep", metavar="DIR", help="run folders here, reused (default: a temporary folder, removed)")
    ap.add_argument("--report-only", metavar="DIR", help="train and evaluate nothing: the table of the runs in DIR")
    ap.add_argument("--json", help="write the table here as JSON (default: DIR/ablation.json when it trains)")
    args = ap.parse_args()
    try:
        candidates = parse_candidates(args.candidates)
    except Exception as e:  # noqa: BLE001 - a ResganError or ValueError, in the parser's words
        ap.error(str(e))
    if args.budget <= 0 or args.parallel < 1 or args.n < 2 or args.poll <= 0:
        ap.error("--budget and --poll must be > 0, --parallel >= 1, -n >= 2")
    torch.set_num_threads(1)

    if args.report_only:
        folder = Path(args.report_only).resolve()
        if not folder.is_dir():
            sys.exit(f"{folder} is not a folder")
        rows = table_rows(candidates, folder, args.budget, extras=True)
        report(rows, args, folder, None)
        return

    if not Path("/proc/self/stat").is_file():
        sys.exit("this benchmark reads CPU time from /proc/PID/stat (Linux)")
    root = data_root(args.data).resolve()
    if args.base:
        base, base_sets = args.base, []
    else:
        if not (root / "cifar10_jpeg").is_dir():
            sys.exit(f"CIFAR-10 not found at {root / 'cifar10_jpeg'} (pass --data DIR or set RESGAN_DATA)")
        base, base_sets = BASE_PRESET, [*BASE_SETS, f"data.path={root / 'cifar10_jpeg'}"]
    try:  # every candidate's config, checked before anything runs
        cfgs = {n: load_config(base, [*base_sets, *args.set, *s]) for n, s in candidates}
    except Exception as e:  # noqa: BLE001 - a ResganError in the trainer's own words
        sys.exit(f"config: {e}")
    test = args.test or test_reference(next(iter(cfgs.values())))
    if not test:
        sys.exit("no test split found for the base's data: pass --test SPEC (e.g. folder:DIR)")
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="resgan_ablation_gan_") as tmp:
        folder = Path(args.keep).resolve() if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        log(f"base {base} {' '.join(base_sets + args.set)}; test {test}; budget {args.budget:g} CPU-s; "
            f"{len(candidates)} candidates, {args.parallel} at a time, runs in {folder}")
        jobs = [Job(n, s, folder / n) for n, s in candidates]
        done = Ablation(args, base, base_sets, test, root).run(jobs)
        errors = {j.name: j.error for j in jobs if j.error}
        rows = table_rows(candidates, folder, args.budget, errors)
        settings = {"base": base, "base_sets": base_sets + args.set, "test": test,
                    "wall_s": round(time.perf_counter() - t_start, 1)}
        report(rows, args, folder if args.keep else None, settings)
    if not done:
        sys.exit(130)
    if errors:
        sys.exit(1)


def report(rows: list[dict], args, folder: Path | None, settings: dict | None) -> None:
    est = any(r.get("cpu_s_estimated") for r in rows)
    what = "CIFAR-10" if not settings or settings["base"] == BASE_PRESET else settings["base"]
    title = (f"{what} recipe ablation at {args.budget:,.0f} CPU-seconds per candidate (1 thread); "
             f"FID / KID (KID x 1e3) of {args.n:,} class-balanced EMA samples against {args.n:,} test images, "
             "bf16 Inception")
    print(f"{title}\n\n{markdown(rows)}")
    if est:
        print(f"\n~: the run holds no record of its CPU time (no NAME.budget.json): --budget ({args.budget:g}) "
              "is assumed")
    if settings:
        print(f"\nbase: {settings['base']} {' '.join(settings['base_sets'])}; test: {settings['test']}; "
              f"{settings['wall_s'] / 60:.1f} min wall")
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs seen; command: python "
          + " ".join([os.path.relpath(sys.argv[0], REPO) if Path(sys.argv[0]).is_absolute() else sys.argv[0],
                      *sys.argv[1:]]))
    out = Path(args.json) if args.json else (folder / "ablation.json" if folder and settings else None)
    if out:
        write_json(out, {"title": title, "budget_cpu_s": args.budget, "n": args.n, **(settings or {}),
                         "command": sys.argv, "rows": rows})
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
