#!/usr/bin/python3
"""bench/train_bench.py - training steps and inference of ckc-generated
programs against their PyTorch twins, side by side in one run.

What it measures (docs/bench.md has the method and how to read the table):
  * ms per training step of mlp (784-256-10, b=64), cnn (b=64), tiny_gpt
    (V=256 T=64 C=128 L=4 H=4 B=8) and the GPT-2-small shape
    (samples/gpt2_small.ckm), ckc's generated `train` against the twin of
    test-suite/parity/twins.py (bench/twins/torch_side.py), 1 thread, and 2
    threads where a ckc target has a thread pool; ratio = PyTorch ms / ckc ms
    (> 1: ckc faster); model FLOPs utilisation against a measured FMA peak;
    peak resident memory of each side's training process;
  * batch-1 latency of a full 64-token tiny_gpt forward;
  * ckc's compile time per sample (median of 5) and the generated project's
    build time.
Each (model, threads) group runs its sides (every ckc target, PyTorch) in
rounds, rotating the order every round; a side's number is the median over
rounds of the median per-step time after warm-up steps. The PyTorch side runs
at its best settings (see torch_env below), never as a strawman.

  bench/train_bench.py [--quick] [--models mlp,cnn,tiny_gpt,gpt2_small]
                       [--targets c99,...] [--results bench/results.md]

Writes its section of bench/results.md between the markers
<!-- train-bench:begin --> and <!-- train-bench:end --> (other sections of the
file, e.g. the sgemm table of bench/run.sh, are kept). Never part of
`make test`: nothing here asserts on timings.
"""

import argparse
import datetime
import fcntl
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CKC = os.path.join(ROOT, "build", "ckc")
WORK = os.path.join(ROOT, "build", "bench")
TORCH_SIDE = os.path.join(ROOT, "bench", "twins", "torch_side.py")
PY = "/usr/bin/python3"  # Debian's torch lives under this interpreter
BEGIN, END = "<!-- train-bench:begin -->", "<!-- train-bench:end -->"

# Same hyper-parameters as bench/twins/torch_side.py (LR, BETAS, EPS, WD, CLIP).
OPTIM = "adamw(lr = 1e-3, betas = (0.9, 0.95), eps = 1e-8, weight_decay = 0.1, clip = 1.0)"

# name: sample file, data kind, per-side step plan. steps/warm: the first
# round; later rounds use up to max_steps so that one run lasts about budget_s.
MODELS = {
    "mlp": dict(src="samples/mlp.ckm", kind="images", shape=(784,), batch=64,
                steps=60, warm=10, max_steps=200, rounds=3, budget_s=4.0),
    "cnn": dict(src="samples/cnn.ckm", kind="images", shape=(1, 28, 28), batch=64,
                steps=12, warm=3, max_steps=60, rounds=3, budget_s=8.0),
    "tiny_gpt": dict(src="samples/tiny_gpt.ckm", kind="tokens", V=256, T=64, batch=8,
                     steps=10, warm=3, max_steps=60, rounds=3, budget_s=10.0),
    "gpt2_small": dict(src="samples/gpt2_small.ckm", kind="tokens", V=50257, T=64, batch=4,
                       steps=4, warm=3, max_steps=10, rounds=3, budget_s=40.0),
}
COMPILE_SAMPLES = ["mlp", "cnn", "tiny_gpt", "resmlp", "gpt2_small"]


# ---------------------------------------------------------------- processes --
RUSAGE_EXEC_C = r"""
/* Runs argv[2..] and writes its peak RSS (KiB, wait4's ru_maxrss) and its
 * wall time (ns, fork to wait4) to argv[1]. Python cannot measure either
 * itself: Linux carries the forked interpreter's resident set over exec into
 * the child's maximum, and Popen.wait(timeout) polls with sleeps of up to
 * 50 ms, so a 70 ms compile read as 64 or 165 ms. */
#define _DEFAULT_SOURCE
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct rusage ru;
  struct timespec t0, t1;
  int status;
  pid_t pid;
  FILE *f;
  if (argc < 3) return 127;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  pid = fork();
  if (pid == 0) {
    execvp(argv[2], argv + 2);
    _exit(127);
  }
  if (pid < 0 || wait4(pid, &status, 0, &ru) != pid) return 127;
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if ((f = fopen(argv[1], "w"))) {
    fprintf(f, "%ld %lld\n", ru.ru_maxrss,
            (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    fclose(f);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
"""


def rusage_exec():
    """The small C launcher above, built under build/bench (again when its
    source changed)."""
    exe = os.path.join(WORK, "rusage_exec")
    src = exe + ".c"
    old = open(src).read() if os.path.exists(src) else None
    if old != RUSAGE_EXEC_C or not os.path.exists(exe):
        with open(src, "w") as f:
            f.write(RUSAGE_EXEC_C)
        subprocess.run(["cc", "-O1", src, "-o", exe], check=True)
    return exe


def run_measured(argv, env=None, cwd=None, timeout=900):
    """Runs argv to completion; returns (rc, wall seconds, peak RSS in MiB,
    stdout+stderr text). Wall time and RSS come from the launcher (fork to
    wait4), the Python-side time only when it did not report (a timeout)."""
    os.makedirs(WORK, exist_ok=True)
    log = os.path.join(WORK, "last-run-%d.log" % os.getpid())
    rssf = os.path.join(WORK, "last-run-%d.rss" % os.getpid())
    if os.path.exists(rssf):
        os.remove(rssf)
    with open(log, "w") as f:
        t0 = time.perf_counter()
        # Own process group: a timeout ends the launcher and the program it runs.
        p = subprocess.Popen([rusage_exec(), rssf] + list(argv), env=env, cwd=cwd, stdout=f,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
            rc = 124
        except KeyboardInterrupt:
            os.killpg(p.pid, 9)
            raise
        wall = time.perf_counter() - t0
    with open(log) as f:
        text = f.read()
    rss = float("nan")
    if os.path.exists(rssf):  # the launcher's own numbers: peak RSS, exact wall time
        with open(rssf) as f:
            kib, ns = f.read().split()
        rss, wall = int(kib) / 1024.0, int(ns) * 1e-9
    return rc, wall, rss, text


def check(rc, text, what):
    if rc != 0:
        raise RuntimeError("%s failed (exit %s):\n%s" % (what, rc, text[-3000:]))


def base_env():
    """Shared by both sides: glibc's malloc tuned so large buffers are not
    returned to the kernel and faulted in again every step (costly in this
    VM; it is what PyTorch needs to run at its best, harmless to ckc), and
    its big blocks on transparent huge pages (hugetlb=1: PyTorch's GPT-2-small
    warm-up steps 13.3, 3.4, 2.3 s become 4.0, 1.6, 1.7 s; its later steps
    are the same 1.58 s either way; ckc's runtime asks for huge pages itself,
    rt-min/ck_mem.h)."""
    env = dict(os.environ)
    env["GLIBC_TUNABLES"] = ("glibc.malloc.mmap_threshold=33554432:"
                             "glibc.malloc.trim_threshold=2147483647:"
                             "glibc.malloc.hugetlb=1")
    return env


def torch_env(threads):
    """PyTorch at its best (shared/platform-notes.md): thread counts for
    OpenMP and the BLAS, a passive OpenMP wait for 2 threads, and OpenBLAS
    free to pick its best kernels (OPENBLAS_CORETYPE unset)."""
    env = base_env()
    env.pop("OPENBLAS_CORETYPE", None)
    for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[k] = str(threads)
    if threads > 1:
        env["OMP_WAIT_POLICY"] = "PASSIVE"
    return env


def ckc_env(threads):
    env = base_env()
    env["CK_THREADS"] = str(threads)
    return env


# ------------------------------------------------------------------ machine --
def first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def machine():
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    field = lambda k: (re.search(r"^%s:\s*(.*)$" % k, lscpu, re.M) or [None, "?"])[1]
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = "%.1f GiB" % (int(f.readline().split()[1]) / 1048576.0)
    except OSError:
        pass
    flags = field("Flags")
    isa = "AVX-512" if "avx512f" in flags else ("AVX2+FMA" if "fma" in flags else "SSE")
    load = os.getloadavg()
    return {
        "cpu": "%s (%s, %s CPUs, %s)" % (field("Model name"), isa, field(r"CPU\(s\)"),
                                         field("Hypervisor vendor") or "bare metal"),
        "memory": mem,
        "os": "%s %s" % (platform.system(), platform.release()),
        "cc": first_line(["cc", "--version"]),
        "python": platform.python_version(),
        "ckc": first_line([CKC, "--version"]),
        "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "load": "%.2f %.2f %.2f" % load,
    }


FMA_PEAK_C = r"""
/* FMA peak: independent accumulator chains hide the FMA latency on every
 * pipe; each thread runs its own chains; GFLOP/s of all threads together. */
#define _POSIX_C_SOURCE 200809L
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef __AVX512F__
typedef __m512 V;
#define W 16
#define NACC 24 /* 32 zmm registers: 24 chains, the two operands */
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADD _mm512_add_ps
#else
typedef __m256 V;
#define W 8
#define NACC 12 /* 16 ymm registers: 12 chains, the two operands (24 would spill) */
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADD _mm256_add_ps
#endif
static const long ITERS = 20000000;
/* Named accumulators (an array would live on the stack and put a
 * store-to-load round trip into every chain). */
#define F4(a, b, c, d) a = FMA(a, x, y); b = FMA(b, x, y); c = FMA(c, x, y); d = FMA(d, x, y);
static void *chains(void *arg) {
  V x = SET1(0.999999f), y = SET1(1e-7f);
  V a0 = SET1(0), a1 = SET1(1), a2 = SET1(2), a3 = SET1(3), a4 = SET1(4), a5 = SET1(5);
  V a6 = SET1(6), a7 = SET1(7), a8 = SET1(8), a9 = SET1(9), a10 = SET1(10), a11 = SET1(11);
#if NACC == 24
  V b0 = SET1(0), b1 = SET1(1), b2 = SET1(2), b3 = SET1(3), b4 = SET1(4), b5 = SET1(5);
  V b6 = SET1(6), b7 = SET1(7), b8 = SET1(8), b9 = SET1(9), b10 = SET1(10), b11 = SET1(11);
#endif
  float out[W];
  long it;
  for (it = 0; it < ITERS; it++) {
    F4(a0, a1, a2, a3) F4(a4, a5, a6, a7) F4(a8, a9, a10, a11)
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4), "+v"(a5),
                     "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9), "+v"(a10), "+v"(a11));
#if NACC == 24
    F4(b0, b1, b2, b3) F4(b4, b5, b6, b7) F4(b8, b9, b10, b11)
    __asm__ volatile("" : "+v"(b0), "+v"(b1), "+v"(b2), "+v"(b3), "+v"(b4), "+v"(b5),
                     "+v"(b6), "+v"(b7), "+v"(b8), "+v"(b9), "+v"(b10), "+v"(b11));
#endif
  }
  a0 = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));
  a0 = ADD(a0, ADD(ADD(a8, a9), ADD(a10, a11)));
#if NACC == 24
  b0 = ADD(ADD(ADD(b0, b1), ADD(b2, b3)), ADD(ADD(b4, b5), ADD(b6, b7)));
  a0 = ADD(a0, ADD(b0, ADD(ADD(b8, b9), ADD(b10, b11))));
#endif
  __builtin_memcpy(out, &a0, sizeof out);
  *(float *)arg = out[0];
  return NULL;
}
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 1, i;
  pthread_t th[64];
  float sink[64];
  struct timespec a, b;
  if (n < 1 || n > 64) return 2;
  clock_gettime(CLOCK_MONOTONIC, &a);
  for (i = 0; i < n; i++) pthread_create(&th[i], NULL, chains, &sink[i]);
  for (i = 0; i < n; i++) pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &b);
  printf("%.2f %d\n", (double)n * ITERS * NACC * W * 2 /
         ((double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec)) * 1e-9, W);
  return sink[0] == 12345.0f;
}
"""


def fma_peak(threads_list, reps):
    """Best of `reps` runs of the FMA microbenchmark per thread count."""
    src, exe = os.path.join(WORK, "fma_peak.c"), os.path.join(WORK, "fma_peak")
    with open(src, "w") as f:
        f.write(FMA_PEAK_C)
    subprocess.run(["cc", "-O3", "-march=native", "-pthread", src, "-o", exe], check=True)
    peaks = {}
    for n in threads_list:
        vals = []
        for _ in range(reps):
            out = subprocess.run([exe, str(n)], capture_output=True, text=True).stdout.split()
            vals.append(float(out[0]))
            width = int(out[1])
        peaks[n] = max(vals)  # noise only lowers it
    return peaks, ("AVX-512" if width == 16 else "AVX2") + " FMA"


# --------------------------------------------------------------------- ckc --
def list_targets():
    out = subprocess.run([CKC, "--list-targets"], capture_output=True, text=True).stdout
    return [ln.split()[0] for ln in out.splitlines() if ln.strip()]


def host_targets(all_targets):
    """The targets that run on this machine: c99 and the x86 ones whose ISA
    the CPU has (not cross targets)."""
    flags = open("/proc/cpuinfo").read()
    ok = lambda t: ("avx512" not in t or "avx512f" in flags) and ("avx2" not in t or "avx2" in flags)
    return [t for t in all_targets if t == "c99" or (re.search(r"x86|avx|host|native", t) and ok(t))]


def best_target(targets):
    """The fastest-looking host target: AVX-512, then AVX2 / other x86, then c99."""
    for key in ("avx512", "avx2", "x86"):
        for t in targets:
            if key in t:
                return t
    return targets[-1]


def bench_source(name, cfg, data):
    """The sample's model with the bench's own train block: same optimizer,
    data and settings as the PyTorch side, whatever the sample's block says."""
    with open(os.path.join(ROOT, cfg["src"])) as f:
        text = f.read()
    model = re.search(r"^model\s+(\w+)", text, re.M).group(1)
    text = re.sub(r"^train\s+\w+\s*\{[^}]*\}\s*", "", text, flags=re.M)
    if cfg["kind"] == "tokens":
        dtype = ", dtype = u16, vocab = V" if cfg["V"] > 256 else ""
        src = 'tokens("%s", batch = B, seq = T%s)' % (data[0], dtype)
    else:
        shape = "(%s)" % ", ".join(str(d) for d in cfg["shape"])
        src = 'npy(x = "%s", y = "%s", batch = B, shape = %s)' % (data[0], data[1], shape)
    text += ("\n// appended by bench/train_bench.py\ntrain %s {\n  data = %s;\n"
             "  loss = cross_entropy(forward(data.x), data.y);\n  optim = %s;\n"
             "  steps = 10; seed = 1; checkpoint_every = 0; eval_every = 0;\n}\n"
             % (model, src, OPTIM))
    path = os.path.join(WORK, "src", name + ".ckm")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


def ckc_compile(src, target, outdir, defines=()):
    argv = [CKC, src, "-t", target, "-o", outdir]
    for d in defines:
        argv += ["-D", d]
    rc, wall, _, text = run_measured(argv)
    check(rc, text, " ".join(argv))
    return wall


def ckc_build(outdir):
    """make -j<cores> of the generated project from scratch (one object per
    source); returns (seconds, exe path)."""
    subprocess.run(["make", "-s", "-C", outdir, "clean"], capture_output=True)
    rc, wall, _, text = run_measured(["make", "-s", "-j%d" % (os.cpu_count() or 1), "-C", outdir],
                                     env=dict(os.environ, CCACHE_DISABLE="1"))
    check(rc, text, "make -C " + outdir)
    mk = open(os.path.join(outdir, "Makefile")).read()
    exe = re.search(r"^(\w+):", mk, re.M).group(1)
    return wall, os.path.join(outdir, exe)


def has_pool(outdir):
    """A project with the runtime's thread pool (rt-min/x86/ck_pool.c) anywhere in it."""
    return any("ck_pool.c" in files for _, _, files in os.walk(outdir))


def step_times(metrics_path, per_step_units):
    """Per-step seconds from metrics.jsonl: the rate field (units/s, printed
    with 0.1 resolution) is precise for short steps, the cumulative time_s
    (1 ms resolution) for long ones."""
    out, prev = [], 0.0
    with open(metrics_path) as f:
        for line in f:
            r = json.loads(line)
            if "time_s" not in r:
                continue
            rate = r.get("tokens_per_s") or r.get("samples_per_s") or 0
            dt_t = r["time_s"] - prev
            prev = r["time_s"]
            out.append(dt_t if dt_t > 0.5 or rate <= 0 else per_step_units / rate)
    return out


def ckc_train(exe, cfg, data, steps, threads, tag):
    rundir = os.path.join(WORK, "runs", tag)
    shutil.rmtree(rundir, ignore_errors=True)
    argv = [exe, "train", "--steps", str(steps), "--seed", "1", "--run-dir", rundir, "--quiet",
            "--eval-every", "0", "--checkpoint-every", "0", "--data", ",".join(data)]
    rc, wall, rss, text = run_measured(argv, env=ckc_env(threads))
    check(rc, text, " ".join(argv))
    units = cfg["batch"] * (cfg["T"] if cfg["kind"] == "tokens" else 1)
    mpath = os.path.join(rundir, "metrics.jsonl")
    times = step_times(mpath, units) if os.path.exists(mpath) else []
    if len(times) != steps:
        listing = subprocess.run(["ls", "-la", rundir], capture_output=True, text=True).stdout
        raise RuntimeError("%s: %d step records for %d steps; run output:\n%s\n%s"
                           % (mpath, len(times), steps, text[-2000:], listing))
    shutil.rmtree(rundir, ignore_errors=True)  # GPT-2-small leaves ~2 GB
    return times, rss


def torch_run(mode, name, threads, extra):
    out = os.path.join(WORK, "torch-%s-%s.json" % (mode, name))
    argv = [PY, TORCH_SIDE, mode, "--model", name, "--threads", str(threads), "--out", out] + extra
    rc, wall, rss, text = run_measured(argv, env=torch_env(threads))
    check(rc, text, " ".join(argv))
    with open(out) as f:
        return json.load(f), rss


# -------------------------------------------------------------------- data --
def make_data(name, cfg):
    """Synthetic or bundled data under build/bench/data (made once)."""
    d = os.path.join(WORK, "data")
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    if cfg["kind"] == "images":
        xp, yp = os.path.join(d, name + "-x.npy"), os.path.join(d, name + "-y.npy")
        if not os.path.exists(yp):
            n = cfg["batch"] * 40
            np.save(xp, rng.uniform(0, 1, size=(n,) + cfg["shape"]).astype(np.float32))
            np.save(yp, rng.integers(0, 10, size=n).astype(np.int32))
        return [xp, yp]
    if cfg["V"] <= 256:
        p = os.path.join(d, "text.u8")
        if not os.path.exists(p):
            text = b""
            fdir = "/usr/share/games/fortunes"
            if os.path.isdir(fdir):  # English text when the fortunes package is there
                for fn in sorted(os.listdir(fdir)):
                    if "." not in fn and os.path.isfile(os.path.join(fdir, fn)):
                        text += open(os.path.join(fdir, fn), "rb").read()
            if len(text) < (1 << 20):
                text += rng.integers(0, 256, size=1 << 20).astype(np.uint8).tobytes()
            open(p, "wb").write(text[: 1 << 20])
        return [p]
    p = os.path.join(d, "tokens.u16")
    if not os.path.exists(p):
        rng.integers(0, cfg["V"], size=1 << 20).astype("<u2").tofile(p)
    return [p]


# ------------------------------------------------------------------- flops --
def train_flops(name, cfg):
    """Model FLOPs of one training step: 3x the forward's multiply-adds
    (forward, grad wrt inputs, grad wrt weights), each MAC = 2 FLOPs; only
    matmuls/convolutions count (docs/bench.md)."""
    B = cfg["batch"]
    if name == "mlp":
        fwd = 2 * B * (784 * 256 + 256 * 10)
    elif name == "cnn":
        fwd = 2 * B * (16 * 28 * 28 * 1 * 9 + 32 * 14 * 14 * 16 * 9 + 1568 * 10)
    else:
        V, T = cfg["V"], cfg["T"]
        C, L = (128, 4) if name == "tiny_gpt" else (768, 12)
        per_tok = 2 * (12 * L * C * C + V * C) + 2 * 2 * L * T * C  # matmuls + QK^T, AV
        fwd = per_tok * B * T
    return 3 * fwd


def infer_flops():
    """tiny_gpt, batch 1, 64 tokens: forward FLOPs (same rule)."""
    V, T, C, L = 256, 64, 128, 4
    return (2 * (12 * L * C * C + V * C) + 4 * L * T * C) * T


# ------------------------------------------------------------------ groups --
def med(xs):
    return statistics.median(xs) if xs else float("nan")


def run_group(name, cfg, data, sides, threads, log):
    """Rounds over the sides (ckc targets + torch), the order rotating each
    round. A side whose one step (plus warm-up) outlasts the model's budget
    runs in the first round only; the others go on. Returns {side:
    dict(ms=[per-round medians], rss=[...], steps=[...])}."""
    res = {s: dict(ms=[], rss=[], steps=[]) for s in sides}
    steps = {s: cfg["steps"] for s in sides}
    active = list(sides)
    for r in range(cfg["rounds"]):
        order = active[r % len(active):] + active[:r % len(active)]
        for side in order:
            n = steps[side]
            if side == "torch":
                out, rss = torch_run("train", name, threads,
                                     ["--steps", str(n), "--data", data[0]] +
                                     (["--data2", data[1]] if len(data) > 1 else []))
                t = out["step_s"]
                res[side]["torch_version"] = out["torch"]
            else:
                t, rss = ckc_train(side[1], cfg, data, n, threads, "%s-%s-%d" % (name, side[0], threads))
            m = med(t[cfg["warm"]:])
            res[side]["ms"].append(1000 * m)
            res[side]["rss"].append(rss)
            res[side]["steps"].append(len(t) - cfg["warm"])
            log("  %-10s %-12s %dT round %d: %d steps, %.2f ms/step, peak RSS %.0f MiB"
                % (name, side if side == "torch" else side[0], threads, r + 1, len(t), 1000 * m, rss))
            # Later rounds: as many steps as fit the budget (at least warm + 1).
            steps[side] = int(min(cfg["max_steps"], max(cfg["warm"] + 1, cfg["budget_s"] / m)))
            if m * (cfg["warm"] + 1) > cfg["budget_s"]:
                active.remove(side)
        if not active:
            break
    return res


def run_infer(targets_built, threads_for, reps, rounds, log, mode="forward"):
    """tiny_gpt batch 1: a C harness around <exe>_forward (mode "forward": the
    full 64-token forward) or <exe>_decode (mode "decode": one call per
    generated token with the K/V cache, positions 0..63 of a sequence per
    rep), no process start, no file I/O, against torch_side.py infer /
    decode under torch.inference_mode(); medians of per-call times."""
    res = {}
    harness = os.path.join(WORK, "infer_harness.c")
    sides = []
    for target, outdir in targets_built:
        mk = open(os.path.join(outdir, "Makefile")).read()
        var = lambda k: (re.search(r"^%s\s*=(.*)$" % k, mk, re.M) or [None, ""])[1].split()
        srcs = [os.path.join(outdir, s) for s in var("SRCS") if s != "main.c"]
        exe = os.path.join(outdir, "infer-bench")
        with open(harness, "w") as f:
            f.write(INFER_HARNESS_C)
        cc = subprocess.run(["cc"] + var("CFLAGS") + ["-I", outdir, harness] + srcs +
                            ["-o", exe] + var("LDLIBS"), capture_output=True, text=True)
        if cc.returncode != 0:
            log("  infer harness does not build for %s:\n%s" % (target, cc.stderr[-1500:]))
            res[target] = dict(error="harness does not build")
            continue
        if mode == "decode" and "_decode(" not in open(os.path.join(outdir, "tinygpt.h")).read():
            res[target] = dict(error="no decode entry")
            continue
        for t in threads_for(target):
            sides.append(((target, exe), t))
    for t in sorted({t for _, t in sides}):
        sides.append(("torch", t))
    for r in range(rounds):
        order = sides[r % len(sides):] + sides[:r % len(sides)]
        for side, t in order:
            if side == "torch":
                out, _ = torch_run("infer" if mode == "forward" else "decode", "tiny_gpt", t,
                                   ["--reps", str(reps)])
                ts = out["forward_s" if mode == "forward" else "decode_s"]
                key = ("torch", t)
            else:
                rc, _, _, text = run_measured([side[1], str(reps), mode], env=ckc_env(t))
                check(rc, text, side[1])
                ts = [float(x) for x in text.split()]
                key = (side[0], t)
            m = 1000 * med(ts[max(1, len(ts) // 10):])
            res.setdefault(key, []).append(m)
            log("  tiny_gpt B=1 %s %-8s %dT round %d: %.3f ms" % (mode, key[0], t, r + 1, m))
    return res


INFER_HARNESS_C = r"""
/* build/bench/infer_harness.c (written by bench/train_bench.py): times
 * tinygpt_forward of a generated tiny_gpt with B = 1, one call per sample
 * (`infer-bench REPS forward`), or tinygpt_decode, one call per token of
 * REPS sequences of T tokens with the K/V cache (`infer-bench REPS decode`). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "tinygpt.h"
int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 100, r, dec = argc > 2 && strcmp(argv[2], "decode") == 0;
  long i;
  float *params = malloc(TINYGPT_PARAMS_BYTES), *arena = malloc(TINYGPT_ARENA_BYTES);
  float *out = malloc(sizeof(float) * TINYGPT_OUT_COUNT);
  int32_t idx[TINYGPT_IDX_COUNT];
  unsigned s = 12345u;
  if (!params || !arena || !out) return 1;
  for (i = 0; i < (long)(TINYGPT_PARAMS_BYTES / sizeof(float)); i++) {
    s = s * 1664525u + 1013904223u;
    params[i] = 0.02f * ((float)(s >> 8) / 16777216.0f - 0.5f);
  }
  for (i = 0; i < TINYGPT_IDX_COUNT; i++) idx[i] = (int32_t)((i * 37 + 11) % 256);
#ifdef CK_POOL_H /* x86 targets: the entry points take the thread pool first */
  CkPool *pool = ck_pool_create(0);
#define FORWARD() tinygpt_forward(pool, params, arena, idx, out)
#define DECODE(p) tinygpt_decode(pool, params, cache, darena, idx + (p), (p), out)
#else
#define FORWARD() tinygpt_forward(params, arena, idx, out)
#define DECODE(p) tinygpt_decode(params, cache, darena, idx + (p), (p), out)
#endif
#ifdef TINYGPT_DECODE_MAX_POS
  float *cache = malloc(TINYGPT_CACHE_BYTES), *darena = malloc(TINYGPT_DECODE_ARENA_BYTES);
  if (!cache || !darena) return 1;
#else
  if (dec) return 1; /* no decode entry */
#endif
  for (r = 0; r < reps * (dec ? TINYGPT_IDX_COUNT : 1); r++) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
#ifdef TINYGPT_DECODE_MAX_POS
    if (dec) {
      if (DECODE(r % TINYGPT_IDX_COUNT) != 0) return 1;
    } else
#endif
    if (FORWARD() != 0) return 1;
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.9f\n", (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec));
  }
  return out[0] != out[0];
}
"""


# ------------------------------------------------------------------ report --
def fmt(x, nd=2):
    return "n/a" if x is None or x != x else ("%.*f" % (nd, x))


def report(mach, peaks, measured, peak_isa, train_rows, infer_rows, compile_rows, notes, torch_version,
           decode_rows=()):
    L = [BEGIN, "## Training and inference: ckc vs PyTorch (bench/train_bench.py)", ""]
    L.append("Machine: %s, %s RAM; %s; %s; Python %s, PyTorch %s; %s. Run %s, "
             "load average at start %s (the machine is shared: medians, side by side)."
             % (mach["cpu"], mach["memory"], mach["os"], mach["cc"], mach["python"],
                torch_version, mach["ckc"], mach["date"], mach["load"]))
    L.append("")
    L.append("Measured %s peak, one thread: %.1f GFLOP/s (best of 7); the 2-thread peak is "
             "taken as 2x (%.1f; two threads measured together gave %.1f)."
             % (peak_isa, peaks[1], peaks[2], measured[2]))
    L.append("")
    L.append("### Training step (ms/step, median of rounds; ratio = PyTorch / ckc, > 1: ckc faster)")
    L.append("")
    L.append("| model | ckc target | threads | ckc ms | PyTorch ms | ratio | ckc MFU | PyTorch MFU "
             "| ckc peak RSS MiB | PyTorch peak RSS MiB | steps timed (ckc / torch) |")
    L.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in train_rows:
        if r.get("na"):
            L.append("| %s | %s | %s | %s | | | | | | | |" % (r["model"], r["target"], r["threads"], r["na"]))
            continue
        L.append("| %s | %s | %d | %s | %s | %s | %s%% | %s%% | %.0f | %.0f | %s / %s |" % (
            r["model"], r["target"], r["threads"], fmt(r["ckc_ms"]), fmt(r["torch_ms"]),
            fmt(r["torch_ms"] / r["ckc_ms"]), fmt(r["ckc_mfu"]), fmt(r["torch_mfu"]),
            r["ckc_rss"], r["torch_rss"], r["ckc_steps"], r["torch_steps"]))
    L.append("")
    L.append("### Inference latency: tiny_gpt, batch 1, full 64-token forward (ms, median)")
    L.append("")
    L.append("| ckc target | threads | ckc ms | PyTorch ms | ratio | ckc MFU |")
    L.append("|---|---|---|---|---|---|")
    for r in infer_rows:
        if r.get("na"):
            L.append("| %s | %s | %s | | | |" % (r["target"], r["threads"], r["na"]))
            continue
        L.append("| %s | %d | %s | %s | %s | %s%% |" % (
            r["target"], r["threads"], fmt(r["ckc_ms"], 3), fmt(r["torch_ms"], 3),
            fmt(r["torch_ms"] / r["ckc_ms"]), fmt(r["ckc_mfu"])))
    L.append("")
    if decode_rows:
        L.append("### Generation: tiny_gpt, batch 1, per token with a K/V cache (ms per token, median)")
        L.append("")
        L.append("ckc: `tinygpt_decode` (passes/decode.c), positions 0..63 of a sequence, every call "
                 "timed; PyTorch: `torch_side.py decode`, a preallocated K/V cache under "
                 "torch.inference_mode() (checked against the full forward first).")
        L.append("")
        L.append("| ckc target | threads | ckc ms/token | PyTorch ms/token | ratio |")
        L.append("|---|---|---|---|---|")
        for r in decode_rows:
            if r.get("na"):
                L.append("| %s | %s | %s | | |" % (r["target"], r["threads"], r["na"]))
                continue
            L.append("| %s | %d | %s | %s | %s |" % (r["target"], r["threads"], fmt(r["ckc_ms"], 4),
                                                   fmt(r["torch_ms"], 4), fmt(r["torch_ms"] / r["ckc_ms"])))
        L.append("")
    L.append("### ckc compile time (median of 5) and generated project build time")
    L.append("")
    L.append("| sample | target | ckc compile ms (median) | min | `make -j%d` s |" % (os.cpu_count() or 1))
    L.append("|---|---|---|---|---|")
    for r in compile_rows:
        L.append("| %s | %s | %.1f | %.1f | %.2f |" % (r["sample"], r["target"], r["ckc_ms"],
                                                      r["ckc_min"], r["build_s"]))
    L.append("")
    if notes:
        L.append("Notes:")
        L.append("")
        for n in notes:
            L.append("- " + n)
        L.append("")
    L.append("Method and how to read it: docs/bench.md.")
    L.append(END)
    return "\n".join(L) + "\n"


def write_results(path, section):
    """Replaces our section between the markers, keeping the rest of the file."""
    old = open(path).read() if os.path.exists(path) else "# ckc benchmark results\n\n"
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section.rstrip("\n") + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + "\n\n" + section
    with open(path, "w") as f:
        f.write(new)


# -------------------------------------------------------------------- main --
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few steps, one round, no gpt2_small")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--targets", default="", help="ckc targets (default: every host target)")
    ap.add_argument("--gpt2-targets", default="best",
                    help="targets for gpt2_small: best (AVX-512, else AVX2, else c99), all, or a list")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results.md"))
    args = ap.parse_args()
    t_start = time.time()
    log = lambda s: print(s, flush=True)
    if not os.path.exists(CKC):
        sys.exit("train_bench: %s is missing: run make first" % CKC)
    os.makedirs(WORK, exist_ok=True)
    # One bench at a time: two would share run directories and each other's cores.
    lock = open(os.path.join(WORK, "train_bench.lock"), "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        log("train_bench: another train_bench run holds %s; waiting for it" % lock.name)
        fcntl.flock(lock, fcntl.LOCK_EX)
    models = [m for m in args.models.split(",") if m]
    if args.quick:
        models = [m for m in models if m != "gpt2_small"]
        for cfg in MODELS.values():
            cfg.update(steps=cfg["warm"] + 3, rounds=1)
        notes_quick = ["--quick: one round of 3 timed steps per side (after warm-up)."]
    else:
        notes_quick = []
    targets = [t for t in args.targets.split(",") if t] or host_targets(list_targets())
    mach = machine()
    log("train_bench: %s; targets %s; models %s" % (mach["cpu"], ",".join(targets), ",".join(models)))
    notes = list(notes_quick)
    log("FMA peak ...")
    measured, peak_isa = fma_peak([1, 2], 7)
    # k threads: k x the one-thread peak (what the cores can do; a measured
    # 2-thread number only says how busy the other core was).
    peaks = {k: k * measured[1] for k in (1, 2)}
    log("  %s: %s GFLOP/s measured" % (peak_isa, measured))

    # Compile and build each (sample, target); compile time of the samples as shipped.
    compile_rows, built = [], {}
    for s in COMPILE_SAMPLES:
        if args.quick and s == "gpt2_small":
            continue
        for t in targets:
            out = os.path.join(WORK, "compile", "%s-%s" % (s, t))
            walls = [ckc_compile(os.path.join(ROOT, "samples", s + ".ckm"), t, out) for _ in range(5)]
            bs, _ = ckc_build(out)
            compile_rows.append(dict(sample=s, target=t, ckc_ms=1000 * med(walls), ckc_min=1000 * min(walls),
                                     build_s=bs))
            log("  compile %-10s %-8s ckc %.1f ms, make %.2f s" % (s, t, 1000 * med(walls), bs))
    notes.append("ckc compile ms is the wall time of the `ckc FILE -t TARGET -o DIR` process "
                 "(process start included); `make -jN` is a from-scratch build of the generated "
                 "project on all N cores (one object per source, then the link; no ccache).")

    train_rows, torch_version = [], "?"
    threads_all = [1, 2]
    for name in models:
        cfg = MODELS[name]
        data = make_data(name, cfg)
        src = bench_source(name, cfg, data)
        mtargets = targets
        if name == "gpt2_small" and args.gpt2_targets != "all":
            mtargets = ([best_target(targets)] if args.gpt2_targets == "best"
                        else args.gpt2_targets.split(","))
        exes = {}
        for t in mtargets:
            out = os.path.join(WORK, "train", "%s-%s" % (name, t))
            ckc_compile(src, t, out)
            _, exe = ckc_build(out)
            exes[t] = (exe, has_pool(out))
        for th in threads_all:
            sides = [(t, exes[t][0]) for t in mtargets if th == 1 or exes[t][1]]
            if th > 1 and not sides:
                train_rows.append(dict(model=name, target="-", threads=th,
                                       na="not available yet: no ckc host target with a thread pool"))
                continue
            log("%s, %d thread%s:" % (name, th, "s" if th > 1 else ""))
            res = run_group(name, cfg, data, sides + ["torch"], th, log)
            torch_version = res["torch"].get("torch_version", torch_version)
            fl = train_flops(name, cfg)
            tms = med(res["torch"]["ms"])
            for side in sides:
                cms = med(res[side]["ms"])
                train_rows.append(dict(
                    model=name, target=side[0], threads=th, ckc_ms=cms, torch_ms=tms,
                    ckc_mfu=100 * fl / (cms / 1000) / (peaks[th] * 1e9),
                    torch_mfu=100 * fl / (tms / 1000) / (peaks[th] * 1e9),
                    ckc_rss=med(res[side]["rss"]), torch_rss=med(res["torch"]["rss"]),
                    ckc_steps=sum(res[side]["steps"]), torch_steps=sum(res["torch"]["steps"])))
            for side in sides:
                if len(res[side]["ms"]) == 1 and cfg["rounds"] > 1:
                    notes.append("%s on %s, %d thread(s): one round only (a step is longer than the "
                                 "%.0f s budget): %d timed step(s) after %d warm-up step(s)."
                                 % (name, side[0], th, cfg["budget_s"], res[side]["steps"][0],
                                    cfg["warm"]))
        for t in (mtargets if name == "gpt2_small" else []):
            hdr = open(os.path.join(WORK, "train", "%s-%s" % (name, t),
                                    os.path.basename(exes[t][0]) + ".h")).read()
            get = lambda k: int(re.search(r"#define \w+_%s (\d+)" % k, hdr).group(1))
            pb, ab = get("PARAMS_BYTES"), get("TRAIN_ARENA_BYTES")
            notes.append("%s on %s: the training loop holds the parameters, gradients and two "
                         "AdamW moments (4 x %.0f MiB) and a train arena of %.0f MiB, %.0f MiB in "
                         "all; the rest of its peak RSS is the data (kept at its own width) and "
                         "the program; checkpoints and weights are streamed to disk."
                         % (name, t, pb / 2**20, ab / 2**20, (4 * pb + ab) / 2**20))
        if name == "gpt2_small" and mtargets != targets:
            notes.append("gpt2_small ran on %s only (--gpt2-targets all for every target)."
                         % ",".join(mtargets))

    infer_rows, decode_rows = [], []
    if "tiny_gpt" not in models:
        infer_rows.append(dict(target="-", threads=1, na="not run: tiny_gpt is not in --models"))
    else:
        log("tiny_gpt batch-1 inference:")
        built = []
        for t in targets:
            out = os.path.join(WORK, "infer", "tiny_gpt-%s" % t)
            ckc_compile(os.path.join(ROOT, "samples", "tiny_gpt.ckm"), t, out, ["B=1"])
            built.append((t, out))
        pools = {t: has_pool(o) for t, o in built}
        ires = run_infer(built, lambda t: [1, 2] if pools[t] else [1],
                         50 if args.quick else 200, 1 if args.quick else 3, log)
        for t, _ in built:
            for th in ([1, 2] if pools[t] else [1]):
                if (t, th) not in ires:
                    infer_rows.append(dict(target=t, threads=th, na="harness did not build"))
                    continue
                c, p = med(ires[(t, th)]), med(ires.get(("torch", th), []))
                infer_rows.append(dict(target=t, threads=th, ckc_ms=c, torch_ms=p,
                                       ckc_mfu=100 * infer_flops() / (c / 1000) / (peaks[th] * 1e9)))
        if not any(pools.values()):
            infer_rows.append(dict(target="-", threads=2,
                                   na="not available yet: no ckc host target with a thread pool"))
        log("tiny_gpt batch-1 generation, per token with the K/V cache:")
        dres = run_infer(built, lambda t: [1, 2] if pools[t] else [1],
                         3 if args.quick else 10, 1 if args.quick else 3, log, mode="decode")
        for t, _ in built:
            for th in ([1, 2] if pools[t] else [1]):
                if (t, th) not in dres:
                    decode_rows.append(dict(target=t, threads=th, na="no decode entry or harness did not build"))
                    continue
                decode_rows.append(dict(target=t, threads=th, ckc_ms=med(dres[(t, th)]),
                                        torch_ms=med(dres.get(("torch", th), []))))

    # Peak RSS floor of the PyTorch side: the interpreter with torch imported.
    _, idle_rss = torch_run("idle", "mlp", 1, [])
    notes.append("Peak RSS is each training process's own maximum resident set (os.wait4). "
                 "PyTorch's includes the interpreter and its libraries: `import torch` alone "
                 "peaks at %.0f MiB here. ckc's includes writing its final checkpoint and "
                 "weights files, which the runtime streams from the training buffers." % idle_rss)
    notes.append("Whole bench: %.0f s." % (time.time() - t_start))
    section = report(mach, peaks, measured, peak_isa, train_rows, infer_rows, compile_rows, notes, torch_version,
                     decode_rows)
    print()
    print(section)
    write_results(args.results, section)
    log("train_bench: wrote %s" % os.path.relpath(args.results, ROOT))


if __name__ == "__main__":
    main()
