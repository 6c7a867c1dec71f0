"""Process settings for the commands that train, restore, evaluate or serve: CPU threads and the allocator.

**Allocator.** A training step allocates and frees the same activation-sized buffers again and again. With
glibc's defaults every buffer above its mmap threshold (at most 32 MiB, and most of a SNGAN-32 step's
are larger) is a fresh ``mmap``: each step first-touches about a gigabyte of new pages, one minor page
fault per 4 KiB page, and the kernel time that costs. The ``resgan`` program therefore, in this order:

1. where jemalloc is installed (Debian / Ubuntu: ``apt-get install libjemalloc2``) and no allocator is
   preloaded yet, runs its own command line once more with jemalloc preloaded and its page decay off
   (:func:`reexec_with_jemalloc`; ``MALLOC_CONF`` as the user set it, if set); an environment marker
   makes sure it happens once; a missing jemalloc is no error, just step 2;
2. otherwise, under glibc, sets glibc's own ``mallopt`` knobs in the running process
   (:func:`tune_allocator`): no ``mmap`` for large blocks (``M_MMAP_MAX = 0``) and no trimming of the
   heap top below 2 GiB (``M_TRIM_THRESHOLD``), so freed buffers are reused by the next step.

Both keep freed memory in the process: its resident set stays at its peak instead of falling between
steps or requests. ``RESGAN_MALLOC=0`` turns both off. Not glibc (musl, macOS, Windows): nothing is
done. The measurements (jemalloc vs glibc tunables vs the default) and why: ``docs/generation.md``,
"Step overhead".

**Threads.** ``--threads N`` sets torch's intra-op threads (and its inter-op pool). Without it,
``OMP_NUM_THREADS`` when set is kept; ``resgan train --resume`` takes the thread count the run was
trained with (stored in its checkpoint: the thread count changes the last bits of a step, so this keeps a
resumed run equal to an uninterrupted one); else :func:`default_threads`, which counts the cores other
processes leave idle now (``/proc/stat`` sampled over a quarter of a second; the 1-minute load average
where there is no ``/proc/stat``, as on macOS) so that a busy machine is not oversubscribed: there
torch's default of one thread per core ran restoration 1.7x slower than one thread (measurements:
``docs/generation.md``). The load average alone lags by about a minute: ``make demo`` on an idle 2-core
machine trained on one thread because it still counted the ``pip install`` that had just finished.
"""

from __future__ import annotations

import ctypes
import json
import os
import time
from pathlib import Path

from .errors import ResganError

ENV_MALLOC = "RESGAN_MALLOC"
ENV_REEXEC = "RESGAN_MALLOC_REEXEC"  # set in the process that reexec_with_jemalloc started
JEMALLOC = ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "/usr/lib/aarch64-linux-gnu/libjemalloc.so.2",
            "/usr/lib64/libjemalloc.so.2", "/usr/lib/libjemalloc.so.2", "/usr/local/lib/libjemalloc.so.2")
# no return of freed pages to the kernel (decay off), and big blocks from the arenas like small ones
JEMALLOC_CONF = "oversize_threshold:4294967296,dirty_decay_ms:-1,muzzy_decay_ms:-1"
# glibc's mallopt parameter numbers (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
PROC_STAT = "/proc/stat"
IDLE_SAMPLE_S = 0.25  # how long default_threads watches the CPUs

_tuned: str | None = None


def glibc_version() -> str | None:
    """``"2.36"`` under glibc, else None (musl, macOS, Windows)."""
    try:
        text = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):
        return None
    name, _, version = text.partition(" ")
    return version if name == "glibc" else None


def malloc_off() -> bool:
    return os.environ.get(ENV_MALLOC, "").strip().lower() in ("0", "off", "false", "no")


def preloaded_allocator() -> str | None:
    """The name of a malloc replacement loaded into this process (jemalloc, tcmalloc, mimalloc), or None."""
    try:
        with open("/proc/self/maps") as f:
            maps = f.read()
    except OSError:
        maps = os.environ.get("LD_PRELOAD", "")
    return next((name for name in ("jemalloc", "tcmalloc", "mimalloc") if f"lib{name}" in maps), None)


def find_jemalloc() -> str | None:
    return next((p for p in JEMALLOC if os.path.isfile(p)), None)


def reexec_with_jemalloc() -> None:
    """Run this process's command line again with jemalloc preloaded (step 1 of the module doc), or return.

    Only for the ``resgan`` program's own command line (``sys.argv`` as the interpreter received it), once
    (``RESGAN_MALLOC_REEXEC``), where jemalloc is installed, no allocator is preloaded and ``RESGAN_MALLOC``
    is not 0. Call it before anything is printed or started; the process id stays the same."""
    import sys

    if os.environ.get(ENV_REEXEC) or malloc_off() or glibc_version() is None or preloaded_allocator():
        return
    lib = find_jemalloc()
    argv = list(getattr(sys, "orig_argv", []))
    n = len(sys.argv) - 1
    if lib is None or not argv or not sys.executable or (n and argv[-n:] != sys.argv[1:]):
        return  # not installed, or not the command line this interpreter was started with (a test, an embedder)
    env = dict(os.environ)
    env[ENV_REEXEC] = lib
    env["LD_PRELOAD"] = lib + (":" + env["LD_PRELOAD"] if env.get("LD_PRELOAD") else "")
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    try:
        os.execve(sys.executable, argv, env)
    except OSError:
        return  # could not start it: go on with glibc (tune_allocator)


def tune_allocator() -> str | None:
    """Make glibc malloc reuse big freed blocks instead of returning them to the kernel (module doc).

    Returns what is in force (a short description), or None when nothing was set: ``RESGAN_MALLOC=0``,
    not glibc, or ``mallopt`` refused. Where jemalloc (or another allocator) is preloaded, glibc's
    malloc is not the one in use: that allocator's name is returned. Never raises; idempotent."""
    global _tuned
    if _tuned is not None:
        return _tuned
    if malloc_off() or glibc_version() is None:
        return None
    other = preloaded_allocator()
    if other:
        _tuned = f"{other} (preloaded)"
        return _tuned
    try:
        mallopt = ctypes.CDLL(None).mallopt
        mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    except (OSError, AttributeError):
        return None
    # M_TRIM_THRESHOLD takes an int here: its largest positive value (2 GiB of free heap top) is
    # far above any step's working set; mmap off: every block from the heap, reused
    if mallopt(M_MMAP_MAX, 0) != 1 or mallopt(M_TRIM_THRESHOLD, 2**31 - 1) != 1:
        return None
    _tuned = "glibc malloc: mmap_max=0, trim_threshold=2GiB"
    return _tuned


def physical_cores() -> int:
    """Cores this process may run on, counting each physical core once (SMT siblings: one)."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores = set()
    for cpu in cpus:
        try:
            with open(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list") as f:
                cores.add(f.read().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def cpu_times(path: str | None = None) -> dict[int, tuple[int, int]] | None:
    """Per CPU, (idle, total) time in clock ticks since boot, from ``/proc/stat``'s ``cpuN`` lines
    (idle counts ``iowait``; total is user .. steal, guest time being inside user already). None
    where the file is absent or unreadable (macOS, Windows, a container without /proc)."""
    try:
        with open(path or PROC_STAT) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    times = {}
    for line in lines:
        name, *fields = line.split()
        if not (name.startswith("cpu") and name[3:].isdigit()):
            continue
        try:
            ticks = [int(v) for v in fields[:8]]
        except ValueError:
            continue
        if len(ticks) >= 4:
            times[int(name[3:])] = (ticks[3] + (ticks[4] if len(ticks) > 4 else 0), sum(ticks))
    return times or None


def _affinity() -> set[int] | None:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None


def idle_cpus(sample_s: float = IDLE_SAMPLE_S) -> int:
    """CPUs of this process's set that other work leaves idle now, rounded: the idle share of each
    over ``sample_s`` seconds of ``/proc/stat`` (:func:`cpu_times`), summed. Where /proc/stat is
    absent: their count less the 1-minute load average (runnable tasks), all of them where that is
    unknown too."""
    allowed = _affinity()
    before = cpu_times()
    if before is not None:
        time.sleep(sample_s)
        after = cpu_times()
        cpus = [c for c in before if (allowed is None or c in allowed) and after and c in after]
        if cpus:
            idle = 0.0
            for c in cpus:
                d_idle, d_total = after[c][0] - before[c][0], after[c][1] - before[c][1]
                idle += min(1.0, max(0.0, d_idle / d_total)) if d_total > 0 else 1.0  # no tick: nothing ran
            return int(idle + 0.5)
    cpus_n = len(allowed) if allowed else (os.cpu_count() or 1)
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return int(cpus_n - load + 0.5)


def default_threads() -> int:
    """torch intra-op threads when neither ``--threads`` nor ``OMP_NUM_THREADS`` (nor a resumed run)
    says: the physical cores this process may use, at most 4, and no more than the CPUs other work
    leaves idle now (:func:`idle_cpus`, a quarter-second sample), at least 1."""
    return max(1, min(physical_cores(), 4, idle_cpus()))


def stored_threads(run_dir: str | Path) -> int | None:
    """The thread count a training run's latest checkpoint was written with (None: unknown)."""
    from .checkpoint import LATEST

    try:
        from safetensors import safe_open

        with safe_open(str(Path(run_dir) / LATEST), framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("meta", "{}"))
    except Exception:  # no checkpoint or not one of ours: training says so in its own words
        return None
    n = meta.get("threads") if isinstance(meta, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and n > 0 else None


def set_threads(threads: int | None, resume_dir: str | Path | None = None) -> int:
    """Apply ``--threads`` (None: ``OMP_NUM_THREADS`` if set, else the count stored in ``resume_dir``'s
    checkpoint, else :func:`default_threads`); returns the intra-op thread count now in force."""
    import torch

    if threads is not None and threads < 1:
        raise ResganError(f"--threads must be 1 or more, got {threads}")
    if threads is None:
        if os.environ.get("OMP_NUM_THREADS", "").strip():
            return torch.get_num_threads()  # the user's setting, which torch has already applied
        threads = (stored_threads(resume_dir) if resume_dir is not None else None) or default_threads()
    torch.set_num_threads(threads)
    try:  # only possible before the first inter-op work of the process; later calls keep the pool
        torch.set_num_interop_threads(threads)
    except RuntimeError:
        pass
    return torch.get_num_threads()


def setup_process(threads: int | None, program: bool, resume_dir: str | Path | None = None) -> None:
    """The settings of a command that trains, restores, evaluates or serves. ``program``: this is the
    process's own command line (``resgan ...``), so the allocator and the default thread count are
    ours to set; called from Python (``resgan.cli.main([...])``), only an explicit ``--threads`` is.
    ``resume_dir``: the run that ``train --resume`` continues."""
    if program:
        reexec_with_jemalloc()  # returns where jemalloc is missing (or already in use)
        tune_allocator()
    if program or threads is not None:
        set_threads(threads, resume_dir)
