"""Step-time savings that must not change a single bit: D frozen in the G update, in-place ReLUs."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from helpers import tiny_overrides

from resgan.config import config_from_dict, load_config
from resgan.gan import task as gan_task
from resgan.gan.models import ResNetDiscriminator, ResNetGenerator
from resgan.restore import models as R
from resgan.restore import task as restore_task
from resgan.restore.ffc import FFCInpaintNet, ReflectConv2d

CPU = torch.device("cpu")


def _no_freeze(monkeypatch, module):
    monkeypatch.setattr(module, "frozen", lambda m: contextlib.nullcontext(m))


def _grads(module):
    return {k: p.grad.clone() for k, p in module.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_gan_g_step_with_d_frozen_gives_bit_identical_g_gradients(monkeypatch, precision):
    cfg = load_config("digits", tiny_overrides(**{"train.precision": precision, "train.channels_last": "true",
                                                  "gan.num_classes": 10, "gan.diffaug": "color,translation"}))
    results = {}
    for freeze in (True, False):
        with monkeypatch.context() as m:
            if not freeze:
                _no_freeze(m, gan_task)
            torch.manual_seed(0)
            gan = gan_task.GAN(cfg, CPU)
            real = torch.rand(16, 1, 16, 16) * 2 - 1
            gan.d_step(real, torch.randint(0, 10, (16,)))
            loss = gan.g_step(16)
            results[freeze] = (loss, _grads(gan.G), {k: p.detach().clone() for k, p in gan.G.named_parameters()},
                               _grads(gan.D), [p.requires_grad for p in gan.D.parameters()])
    (loss_a, ga, pa, da, req), (loss_b, gb, pb, db, _) = results[True], results[False]
    assert loss_a == loss_b and ga.keys() == gb.keys() == pa.keys()
    for k in ga:
        assert torch.equal(ga[k], gb[k]), k
        assert torch.equal(pa[k], pb[k]), k
    assert all(req)  # D trains again after the G update
    # frozen: D's gradients are those of its own step, untouched; not frozen: the G update overwrote them
    assert da.keys() == db.keys() and any(not torch.equal(da[k], db[k]) for k in da)


def test_restore_step_with_d_frozen_gives_bit_identical_net_gradients(monkeypatch):
    cfg = config_from_dict({"task": "restore", "data": {"name": "folder", "channels": 3},
                            "restore": {"kind": "inpaint", "arch": "ffc", "width": 8, "blocks": 1, "levels": 2,
                                        "crop": 32, "adv_weight": 0.1, "fm_weight": 1.0, "d_width": 8},
                            "train": {"batch_size": 4, "precision": "fp32"}})
    clean = torch.rand(4, 3, 32, 32) * 2 - 1
    results = {}
    for freeze in (True, False):
        with monkeypatch.context() as m:
            if not freeze:
                _no_freeze(m, restore_task)
            torch.manual_seed(0)
            task = restore_task.Restorer(cfg, CPU)
            stats = task.train_step(lambda: (clean, torch.zeros(4, dtype=torch.long)))
            results[freeze] = (stats, _grads(task.net), [p.requires_grad for p in task.D.parameters()])
    (sa, ga, req), (sb, gb, _) = results[True], results[False]
    assert sa == sb and ga.keys() == gb.keys() and ga
    for k in ga:
        assert torch.equal(ga[k], gb[k]), k
    assert all(req)


def _count_inplace(monkeypatch, honour: bool) -> list[int]:
    """Patch relu / leaky_relu: count the in-place calls; ``honour=False`` runs them out of place."""
    calls = [0]
    relu, leaky = F.relu, F.leaky_relu

    def relu_(input, inplace=False):
        calls[0] += inplace
        return relu(input, inplace=inplace and honour)

    def leaky_(input, negative_slope=0.01, inplace=False):
        calls[0] += inplace
        return leaky(input, negative_slope, inplace=inplace and honour)

    monkeypatch.setattr(F, "relu", relu_)
    monkeypatch.setattr(F, "leaky_relu", leaky_)
    return calls


def _run(net, inputs, monkeypatch, honour):
    with monkeypatch.context() as m:
        calls = _count_inplace(m, honour)
        xs = [x.clone().requires_grad_(x.is_floating_point()) for x in inputs]
        out = net(*xs)
        out = out[0] if isinstance(out, tuple) else out
        out.float().square().sum().backward()
    grads = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad(set_to_none=True)
    return calls[0], out.detach(), [x.grad for x in xs], grads


NETS = {
    "G bn cond": lambda: (ResNetGenerator(16, 1, 16, 8, num_classes=3),
                          lambda: [torch.randn(4, 16), torch.arange(4) % 3]),
    "G no norm": lambda: (ResNetGenerator(16, 3, 16, 8, norm="none"), lambda: [torch.randn(4, 16)]),
    "D sn": lambda: (ResNetDiscriminator(16, 3, 8), lambda: [torch.randn(4, 3, 16, 16)]),
    "D bn": lambda: (ResNetDiscriminator(16, 3, 8, norm="bn"), lambda: [torch.randn(4, 3, 16, 16)]),
    "D none mbstd": lambda: (ResNetDiscriminator(16, 3, 8, norm="none", mbstd=2), lambda: [torch.randn(4, 3, 16, 16)]),
    "RestoreNet": lambda: (R.RestoreNet(3, 8, 2), lambda: [torch.rand(2, 3, 16, 16)]),
    "UNet": lambda: (R.UNetRestorer(3, 8, 1, 2), lambda: [torch.rand(2, 3, 16, 16)]),
    "SRNet": lambda: (R.SRNet(3, 8, 1, 4), lambda: [torch.rand(2, 3, 8, 8)]),
    "RFDN": lambda: (R.RFDNet(3, 8, 2, 2), lambda: [torch.rand(2, 3, 20, 20)]),
    "FFC inpaint": lambda: (FFCInpaintNet(3, 8, 1, 2), lambda: [torch.rand(2, 3, 16, 16),
                                                                  (torch.rand(2, 1, 16, 16) > 0.6).float()]),
    "PatchGAN": lambda: (R.PatchDiscriminator(3, 8), lambda: [torch.rand(2, 3, 32, 32)]),
}


@pytest.mark.parametrize("name", list(NETS))
@pytest.mark.parametrize("bf16", [False, True])
def test_inplace_activations_change_no_value_or_gradient(monkeypatch, name, bf16):
    torch.manual_seed(0)
    net, make = NETS[name]()
    for p in net.parameters():  # zero-initialised output layers would hide the body's gradients
        if p.dim() > 1 and not p.any():
            torch.nn.init.normal_(p, std=0.1)
    net.train()
    inputs = make()
    results = []
    for honour in (True, False):
        torch.manual_seed(1)  # spectral norm's power iteration and BatchNorm see the same state
        state = {k: v.clone() for k, v in net.state_dict().items()}
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            results.append(_run(net, inputs, monkeypatch, honour))
        net.load_state_dict(state)
    (n_a, out_a, gx_a, gp_a), (_, out_b, gx_b, gp_b) = results
    assert n_a > 0  # some activation did run in place
    assert torch.equal(out_a, out_b)
    for a, b in zip(gx_a, gx_b):
        assert (a is None and b is None) or torch.equal(a, b)
    for k in gp_a:
        assert torch.equal(gp_a[k], gp_b[k]), k


@pytest.mark.parametrize("k,stride", [(3, 1), (3, 2), (7, 1)])
def test_reflect_conv_pads_in_bf16_and_matches_nn_conv2d(k, stride):
    """CPU autocast runs reflection_pad2d in fp32; ReflectConv2d pads in the activation's own dtype (no
    casts), with nn.Conv2d's weights and the same values: bit-identical forward, same gradients."""
    torch.manual_seed(0)
    ours = ReflectConv2d(8, 5, k, stride).to(memory_format=torch.channels_last)
    ref = torch.nn.Conv2d(8, 5, k, stride, padding=k // 2, padding_mode="reflect").to(memory_format=torch.channels_last)
    ref.load_state_dict(ours.state_dict())  # same parameter names and shapes
    x = torch.randn(2, 8, 19, 22).to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
    outs, grads, casts = [], [], []
    for conv in (ours, ref):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.profiler.profile(record_shapes=True) as prof:
            y = conv(xi)
            y.float().square().sum().backward()
        outs.append(y)
        grads.append((xi.grad, conv.weight.grad))
        casts.append(sum(e.name == "aten::_to_copy" and bool(e.input_shapes) and e.input_shapes[0][:2] == [2, 8]
                         for e in prof.events()))  # casts of the activation
    assert outs[0].dtype == torch.bfloat16 and torch.equal(outs[0], outs[1])
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=2e-2, atol=1e-3)
    torch.testing.assert_close(grads[0][0].float(), grads[1][0].float(), rtol=2e-2, atol=2e-2)
    assert casts[0] == 0 < casts[1]  # the activation is never cast: nn.Conv2d casts it to fp32 and back
    with torch.no_grad():  # fp32 (no autocast): the same module as nn.Conv2d
        xf = torch.randn(1, 8, 11, 13)
        assert torch.equal(ours(xf), ref(xf))


# ---------------------------------------------------------------- process settings (resgan.runtime)

COMMANDS = {  # each fails fast (exit 1 or 2) on a missing input, after the process settings are applied
    "train": lambda tmp: ["train", str(tmp / "no.yaml"), "--out", str(tmp / "run")],
    "restore": lambda tmp: ["restore", str(tmp / "no.png"), "--task", "denoise", "--out", str(tmp / "out")],
    "evaluate": lambda tmp: ["evaluate", str(tmp / "a"), str(tmp / "b"), "--metrics", "psnr"],
    "serve": lambda tmp: ["serve", "--models", str(tmp / "no.safetensors")],
}


@pytest.fixture
def spies(monkeypatch):
    """Record torch.set_num_threads and tune_allocator instead of changing this test process."""
    from resgan import runtime

    seen = {"threads": [], "allocator": 0}
    monkeypatch.setattr(torch, "set_num_threads", lambda n: seen["threads"].append(n))
    monkeypatch.setattr(torch, "set_num_interop_threads", lambda n: None)
    monkeypatch.setattr(runtime, "tune_allocator", lambda: seen.__setitem__("allocator", seen["allocator"] + 1))
    monkeypatch.setattr(runtime, "reexec_with_jemalloc", lambda: seen.__setitem__("reexec", seen.get("reexec", 0) + 1))
    return seen


@pytest.mark.parametrize("command", list(COMMANDS))
def test_threads_flag_is_applied(tmp_path, spies, command):
    from resgan.cli import main

    assert main([*COMMANDS[command](tmp_path), "--threads", "3"]) != 0  # the missing input, after the settings
    assert spies["threads"] == [3] and spies["allocator"] == 0  # called from Python: the allocator is the caller's
    spies["threads"].clear()
    assert main(COMMANDS[command](tmp_path)) != 0
    assert spies["threads"] == []  # no --threads from Python: this process's threads are the caller's


def test_threads_must_be_positive(tmp_path, spies, capsys):
    from resgan.cli import main

    assert main([*COMMANDS["restore"](tmp_path), "--threads", "0"]) == 2
    assert "--threads must be 1 or more" in capsys.readouterr().err


def test_the_program_sets_allocator_and_default_threads(tmp_path, spies, monkeypatch):
    from resgan import runtime
    from resgan.cli import main

    monkeypatch.setattr(runtime, "physical_cores", lambda: 16)
    monkeypatch.setattr(runtime, "idle_cpus", lambda: 16)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("sys.argv", ["resgan", *COMMANDS["train"](tmp_path)])
    assert main() == 2
    assert spies == {"threads": [runtime.default_threads()], "allocator": 1, "reexec": 1}
    assert runtime.default_threads() == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own setting stands
    spies["threads"].clear()
    assert main() == 2 and spies["threads"] == []
    monkeypatch.setattr("sys.argv", ["resgan", *COMMANDS["train"](tmp_path), "--threads", "2"])
    assert main() == 2 and spies["threads"] == [2]
    monkeypatch.setattr(runtime, "physical_cores", lambda: 1)
    assert runtime.default_threads() == 1


def proc_stat(ticks: dict[int, tuple[int, int]]) -> str:
    """/proc/stat's text where CPU c has spent ``ticks[c]`` = (busy, idle) clock ticks since boot."""
    lines = ["cpu  0 0 0 0 0 0 0 0 0 0"]
    for c, (busy, idle) in ticks.items():  # user nice system idle iowait irq softirq steal guest guest_nice
        user, system = busy - busy // 4 - 4, busy // 4  # + nice 1, softirq 3; guest is inside user
        lines.append(f"cpu{c} {user} 1 {system} {idle - idle // 10} {idle // 10} 0 3 0 {user // 2} 0")
    return "\n".join([*lines, "intr 1 2 3", "ctxt 99", "btime 1700000000", "procs_running 3", ""])


@pytest.fixture
def fake_cpus(tmp_path, monkeypatch):
    """A fake /proc/stat: ``fake_cpus(busy_now, cpus=..., load=...)`` makes every sample from then on see
    CPU c busy ``busy_now[c]`` of the time (the file advances 100 ticks per CPU during the sampler's sleep),
    with a 1-minute load average of ``load`` beside it; returns the sleeps the sampler asked for."""
    from resgan import runtime

    stat = tmp_path / "stat"
    sleeps = []

    def setup(busy_now: dict[int, float], cpus: set[int] | None = None, load: float = 0.0):
        ticks = {c: (50_000 + 7 * c, 20_000 + 3 * c) for c in busy_now}  # the past: whatever it was
        stat.write_text(proc_stat(ticks))
        monkeypatch.setattr(runtime, "PROC_STAT", str(stat))
        monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(cpus or busy_now), raising=False)
        monkeypatch.setattr(runtime.os, "getloadavg", lambda: (load, load, load))

        def sleep(seconds):  # the sample's interval: the CPUs run as told meanwhile
            sleeps.append(seconds)
            for c, share in busy_now.items():
                busy, idle = ticks[c]
                ticks[c] = busy + round(100 * share), idle + 100 - round(100 * share)
            stat.write_text(proc_stat(ticks))

        monkeypatch.setattr(runtime.time, "sleep", sleep)
        return sleeps

    return setup


def test_default_threads_judge_idleness_now_not_by_the_load_average(fake_cpus, monkeypatch):
    from resgan import runtime

    monkeypatch.setattr(runtime, "physical_cores", lambda: 2)
    # idle now, though the 1-minute load average still counts a pip install that has just ended (issue 30)
    sleeps = fake_cpus({0: 0.02, 1: 0.0}, load=3.1)
    assert runtime.idle_cpus() == 2 and runtime.default_threads() == 2
    assert sleeps and all(0.2 <= s <= 0.5 for s in sleeps)  # a short sample of the present
    for busy, idle in (({0: 1.0, 1: 0.0}, 1), ({0: 1.0, 1: 1.0}, 0), ({0: 0.7, 1: 0.6}, 1), ({0: 0.3, 1: 0.3}, 1),
                       ({0: 0.2, 1: 0.2}, 2)):
        fake_cpus(busy, load=0.0)  # busy now, whatever the load average says
        assert runtime.idle_cpus() == idle, busy
        assert runtime.default_threads() == max(1, idle), busy
    # only the CPUs this process may run on count: CPUs 2, 3 idle but outside its set
    fake_cpus({0: 1.0, 1: 1.0, 2: 0.0, 3: 0.0}, cpus={0, 1})
    assert runtime.idle_cpus() == 0 and runtime.default_threads() == 1
    monkeypatch.setattr(runtime, "physical_cores", lambda: 16)
    fake_cpus({c: 0.0 for c in range(32)})
    assert runtime.idle_cpus() == 32 and runtime.default_threads() == 4  # 16 cores idle: at most 4


def test_default_threads_fall_back_on_the_load_average_without_proc_stat(tmp_path, monkeypatch):
    from resgan import runtime

    monkeypatch.setattr(runtime, "PROC_STAT", str(tmp_path / "absent"))  # macOS: no /proc
    monkeypatch.setattr(runtime.time, "sleep", lambda s: pytest.fail("nothing to sample"))
    assert runtime.cpu_times() is None
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(runtime, "physical_cores", lambda: 2)
    for load, threads in ((0.1, 2), (0.7, 1), (2.9, 1), (9.0, 1)):  # 2 CPUs, the 1-minute load average
        monkeypatch.setattr(runtime.os, "getloadavg", lambda load=load: (load, load, load))
        assert runtime.default_threads() == threads, load
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: set(range(32)), raising=False)
    monkeypatch.setattr(runtime, "physical_cores", lambda: 16)
    monkeypatch.setattr(runtime.os, "getloadavg", lambda: (10.0, 0, 0))
    assert runtime.default_threads() == 4  # 22 idle CPUs, 16 cores: at most 4
    monkeypatch.delattr(runtime.os, "getloadavg")  # neither known: every core
    assert runtime.default_threads() == 4


def test_cpu_times_reads_this_machines_proc_stat():
    from resgan import runtime

    times = runtime.cpu_times()
    if times is None:
        pytest.skip("no /proc/stat here")
    assert times and set(times) >= (runtime._affinity() or set())
    assert all(0 <= idle <= total for idle, total in times.values())
    assert 0 <= runtime.idle_cpus(0.05) <= len(times)


def test_resume_takes_the_runs_own_thread_count(tmp_path, spies, monkeypatch):
    from resgan import runtime
    from resgan.checkpoint import save_checkpoint
    from resgan.cli import main

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(runtime, "default_threads", lambda: 1)
    run = tmp_path / "run"
    run.mkdir()
    save_checkpoint(run / "latest.safetensors", {"x": torch.zeros(1)}, {"kind": "train", "threads": 3})
    assert runtime.stored_threads(run) == 3 and runtime.stored_threads(tmp_path) is None
    monkeypatch.setattr("sys.argv", ["resgan", "train", "digits", "--out", str(run), "--resume"])
    main()  # the checkpoint is no real run: an error after the settings
    assert spies["threads"] == [3]
    monkeypatch.setattr("sys.argv", ["resgan", "train", "digits", "--out", str(run), "--resume", "--threads", "2"])
    main()
    assert spies["threads"] == [3, 2]
    monkeypatch.setattr("sys.argv", ["resgan", "train", "digits", "--out", str(run)])  # not a resume: the default
    main()
    assert spies["threads"] == [3, 2, 1]


def test_checkpoints_record_the_thread_count(tmp_path):
    from resgan.checkpoint import load_checkpoint
    from resgan.train import train

    train(load_config("digits", tiny_overrides(**{"train.steps": 1})), tmp_path / "run", progress=False)
    assert load_checkpoint(tmp_path / "run" / "latest.safetensors")[1]["threads"] == torch.get_num_threads()


ALLOC_CHURN = """
import resource, sys, torch
from resgan.runtime import tune_allocator
print(tune_allocator())
torch.set_num_threads(1)
for i in range(30):
    if i == 10:  # the first ones settle the heap
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.ones(16 * 2**20)  # 64 MiB, freed at once
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def test_allocator_tuning_stops_the_page_fault_churn(tmp_path):
    import os
    import subprocess
    import sys

    from resgan.runtime import glibc_version

    if glibc_version() is None:
        pytest.skip("glibc only")
    runs = {}
    for malloc in ("1", "0"):
        env = {**os.environ, "RESGAN_MALLOC": malloc, "OMP_NUM_THREADS": "1"}
        env.pop("LD_PRELOAD", None)
        out = subprocess.run([sys.executable, "-c", ALLOC_CHURN], capture_output=True, text=True, env=env, check=True)
        runs[malloc] = out.stdout.split()
    assert runs["1"][0].startswith("glibc") and runs["0"][0] == "None"
    pages = 20 * 16 * 2**20 * 4 // 4096
    assert int(runs["0"][-1]) > pages * 0.9  # glibc as it is: every 64 MiB block is a fresh mmap
    assert int(runs["1"][-1]) < pages * 0.1  # tuned: the same heap block again


def test_reexec_with_jemalloc_runs_the_same_command_line_once(monkeypatch):
    from resgan import runtime

    class Exec(Exception):
        pass

    calls = []

    def execve(path, argv, env):
        calls.append((path, argv, env))
        raise Exec

    monkeypatch.setattr(runtime.os, "execve", execve)
    monkeypatch.setattr(runtime, "find_jemalloc", lambda: "/lib/libjemalloc.so.2")
    monkeypatch.setattr(runtime, "preloaded_allocator", lambda: None)
    monkeypatch.setattr(runtime, "glibc_version", lambda: "2.36")
    for k in (runtime.ENV_REEXEC, runtime.ENV_MALLOC, "MALLOC_CONF"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("LD_PRELOAD", "libfoo.so")
    monkeypatch.setattr("sys.argv", ["/venv/bin/resgan", "train", "digits"])
    monkeypatch.setattr("sys.orig_argv", ["/venv/bin/python", "/venv/bin/resgan", "train", "digits"], raising=False)
    with pytest.raises(Exec):
        runtime.reexec_with_jemalloc()
    path, argv, env = calls[0]
    assert argv == ["/venv/bin/python", "/venv/bin/resgan", "train", "digits"]
    assert env["LD_PRELOAD"] == "/lib/libjemalloc.so.2:libfoo.so" and env["MALLOC_CONF"] == runtime.JEMALLOC_CONF
    assert env[runtime.ENV_REEXEC]
    # not again, not when turned off, not without jemalloc, not for another command line (a test, an embedder)
    for change in (lambda m: m.setenv(runtime.ENV_REEXEC, "1"), lambda m: m.setenv(runtime.ENV_MALLOC, "0"),
                   lambda m: m.setattr(runtime, "find_jemalloc", lambda: None),
                   lambda m: m.setattr(runtime, "preloaded_allocator", lambda: "tcmalloc"),
                   lambda m: m.setattr("sys.argv", ["pytest", "-k", "x"])):
        with monkeypatch.context() as m:
            change(m)
            runtime.reexec_with_jemalloc()
    assert len(calls) == 1

    def fails(path, argv, env):
        raise OSError("exec format error")

    monkeypatch.setattr(runtime.os, "execve", fails)
    runtime.reexec_with_jemalloc()  # no error: glibc's tuning follows


REEXEC = """
import os
from resgan import runtime
runtime.reexec_with_jemalloc()
print(os.environ.get(runtime.ENV_REEXEC), runtime.tune_allocator(), sep="|")
"""


def test_the_allocator_in_force_in_a_real_process():
    """With jemalloc installed the process runs again with it preloaded; without, glibc is tuned."""
    import os
    import subprocess
    import sys

    from resgan.runtime import find_jemalloc, glibc_version

    if glibc_version() is None:
        pytest.skip("glibc only")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "RESGAN_MALLOC", "RESGAN_MALLOC_REEXEC")}
    out = subprocess.run([sys.executable, "-c", REEXEC, "arg"], capture_output=True, text=True, env=env, check=True)
    marker, allocator = out.stdout.strip().split("|")
    if find_jemalloc():
        assert marker == find_jemalloc() and allocator == "jemalloc (preloaded)"
    else:
        assert marker == "None" and allocator.startswith("glibc malloc")
    env["RESGAN_MALLOC"] = "0"
    out = subprocess.run([sys.executable, "-c", REEXEC, "arg"], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "None|None"
