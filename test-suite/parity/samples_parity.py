#!/usr/bin/python3
"""test-suite/parity/samples_parity.py - the samples end to end against PyTorch twins.

TOLERANCE: forward outputs must agree with the twin's float64 forward within
max |ckc - torch64| / max(1, |torch64|) <= 1e-5. The reference is float64, not
PyTorch's float32 result: that one carries its own rounding, which depends on
the CPU's BLAS kernels (on an AMD Zen 5, tiny_gpt's float32 logits from torch
were 8.2e-6 from float64 and ckc's 8.5e-6, but 1.04e-5 from each other).

For every sample in samples/ (mlp, cnn, tiny_gpt, resmlp), and for
test-suite/parity/stdlib_mix.ckm (the stdlib layers the samples leave out), this
  1. compiles it with `build/ckc -t c99`, builds it with make;
  2. runs `init --seed N` and checks the weights file: the tensor names, shapes
     and dtypes are exactly the twin's state_dict (test-suite/parity/twins.py),
     the values follow the initialiser the .ckm declares (stdlib defaults,
     GPT-2's N(0, 0.02) for wte/wpe), the same seed gives the same bytes and
     another seed other values;
  3. writes random weights (numpy, by hand in safetensors format) and a random
     input, runs `infer` and compares with the twin's forward in float64 (the
     float32 forward's distance to it, and ckc's to that, are printed too).
Output: `PASS sample/<name>/<check> ...` / `FAIL ...`; exit 1 on any failure.
"""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ckc_harness as H  # noqa: E402
import twins  # noqa: E402

TOL = 1e-5
torch.set_num_threads(1)


def img_input(rng, shape):
    return rng.uniform(0.0, 1.0, size=shape).astype(np.float32)


def tok_input(rng, shape):
    return rng.integers(0, 256, size=shape).astype(np.int32)


def feat_input(rng, shape):
    return rng.normal(0.0, 1.0, size=shape).astype(np.float32)


# name, file, executable, twin factory, input shape, input generator, defines
SAMPLES = [
    ("mlp", "samples/mlp.ckm", "mlp", twins.MLP, (64, 784), img_input, ()),
    ("mlp_B3", "samples/mlp.ckm", "mlp", twins.MLP, (3, 784), img_input, ("B=3",)),
    ("cnn", "samples/cnn.ckm", "cnn", twins.CNN, (64, 1, 28, 28), img_input, ()),
    ("tiny_gpt", "samples/tiny_gpt.ckm", "tinygpt", twins.TinyGPT, (8, 64), tok_input, ()),
    ("resmlp", "samples/resmlp.ckm", "resmlp", twins.ResMLP, (32, 64), feat_input, ()),
    ("stdlib_mix", "test-suite/parity/stdlib_mix.ckm", "stdlibmix", twins.StdlibMix, None,
     lambda rng, _: [rng.integers(0, 50, size=(2, 25)).astype(np.int32),
                     rng.normal(0.0, 1.0, size=(2, 3, 10, 10)).astype(np.float32)], ()),
]


# Instance names of norm layers in the samples (weights 1, biases 0 at init).
NORM_OWNERS = ("ln_1", "ln_2", "ln_f", "head_norm", "norm", "ln")


def fan_in(shape):
    return int(np.prod(shape[1:])) if len(shape) > 1 else None


def expected_init(name, shape, sd_shapes):
    """What the .ckm says this parameter starts as: ('const', v) | ('normal', mean, std)
    | ('uniform', bound)."""
    leaf = name.rsplit(".", 1)[-1]
    owner = name.rsplit(".", 1)[0] if "." in name else ""
    if name in ("wte", "wpe"):
        return ("normal", 0.0, 0.02)
    if owner.split(".")[-1] == "emb":  # nn.Embedding: N(0, 1) like torch
        return ("normal", 0.0, 1.0)
    norm_owner = owner.split(".")[-1] in NORM_OWNERS
    if norm_owner:
        return ("const", 1.0) if leaf == "weight" else ("const", 0.0)
    # Linear / Conv2d: PyTorch's default uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)), bias too.
    wshape = sd_shapes[owner + ".weight"]
    return ("uniform", 1.0 / np.sqrt(fan_in(wshape)))


def check_init_values(name, arr, rule):
    a = arr.astype(np.float64)
    if not np.all(np.isfinite(a)):
        return "%s: non-finite values" % name
    if rule[0] == "const":
        if not np.all(a == rule[1]):
            return "%s: expected all %g, got min %g max %g" % (name, rule[1], a.min(), a.max())
        return None
    # Statistical checks at 5 standard errors of the estimate, so that a
    # correct initialiser fails about once in 10^6 runs; small tensors get
    # the range check only.
    n = a.size
    if n < 64:
        if rule[0] == "uniform" and np.abs(a).max() > rule[1]:
            return "%s: |value| %g above the bound %g" % (name, np.abs(a).max(), rule[1])
        return None
    if rule[0] == "normal":
        mean, std = rule[1], rule[2]
        se_mean, se_std = std / np.sqrt(n), std / np.sqrt(2.0 * n)
    else:
        bound = rule[1]
        if np.abs(a).max() > bound:
            return "%s: |value| %g above the bound %g" % (name, np.abs(a).max(), bound)
        if np.abs(a).max() < 0.8 * bound:  # P = 0.8^n < 1e-6 for n >= 64
            return "%s: values only reach %g of the bound %g" % (name, np.abs(a).max(), bound)
        mean, std = 0.0, bound / np.sqrt(3.0)
        se_mean, se_std = std / np.sqrt(n), std * np.sqrt(0.2 / n)
    if abs(a.mean() - mean) > 5 * se_mean or abs(a.std() - std) > 5 * se_std:
        return "%s: mean %.4g std %.4g over %d values, expected %s mean %g std %.4g" % (
            name, a.mean(), a.std(), n, rule[0], mean, std)
    return None


def random_weights(rng, sd):
    """Random values for every tensor, scaled so activations stay O(1) and every
    parameter matters (norm weights away from 1, biases away from 0)."""
    out = []
    for name, t in sd.items():
        shape = tuple(t.shape)
        leaf = name.rsplit(".", 1)[-1]
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        is_norm = owner.split(".")[-1] in NORM_OWNERS
        if is_norm and leaf == "weight":
            v = 1.0 + 0.2 * rng.standard_normal(shape)
        elif leaf == "bias":
            v = 0.1 * rng.standard_normal(shape)
        elif name in ("wte", "wpe"):
            v = 0.3 * rng.standard_normal(shape)
        else:
            v = rng.standard_normal(shape) / np.sqrt(fan_in(shape) or 1)
        out.append((name, v.astype(np.float32)))
    return out


def run_sample(spec, results):
    name, path, exe, factory, in_shape, gen, defines = spec
    tag = "sample/%s" % name
    rng = np.random.default_rng(len(name) * 7919 + sum(map(ord, name)))
    work = H.make_workdir("ckc-sample-%s-" % name)
    twin = factory()
    sd = twin.state_dict()
    sd_shapes = {k: tuple(v.shape) for k, v in sd.items()}
    try:
        try:
            proj = H.Project(work, os.path.join(H.ROOT, path), exe, defines)
        except H.StepError as e:
            results.append((False, "%s/build stage=%s %s" % (tag, e.stage, e.detail)))
            return
        results.append((True, "%s/build" % tag))

        # -- init: names, shapes, dtypes, values, determinism
        w1 = os.path.join(work, "init1.safetensors")
        try:
            proj.init(w1, 1234)
            got = H.read_safetensors(w1)
        except (H.StepError, ValueError) as e:
            results.append((False, "%s/init %s" % (tag, e)))
            got = None
        if got is not None:
            got_shapes = {k: tuple(v.shape) for k, v in got}
            problems = []
            for k in sorted(set(sd_shapes) - set(got_shapes)):
                problems.append("missing %s%s" % (k, list(sd_shapes[k])))
            for k in sorted(set(got_shapes) - set(sd_shapes)):
                problems.append("unexpected %s%s" % (k, list(got_shapes[k])))
            for k in sorted(set(got_shapes) & set(sd_shapes)):
                if got_shapes[k] != sd_shapes[k]:
                    problems.append("%s: shape %s, twin has %s" % (k, list(got_shapes[k]),
                                                                   list(sd_shapes[k])))
            for k, v in got:
                if v.dtype != np.float32:
                    problems.append("%s: dtype %s, expected F32" % (k, v.dtype))
            results.append((not problems, "%s/init_names %d tensors%s" % (
                tag, len(got), (": " + "; ".join(problems[:8])) if problems else "")))
            if not problems:
                bad = [m for m in (check_init_values(k, v, expected_init(k, v.shape, sd_shapes))
                                   for k, v in got) if m]
                results.append((not bad, "%s/init_values%s" % (tag, (": " + "; ".join(bad[:6]))
                                                                if bad else "")))
            try:
                w2 = os.path.join(work, "init2.safetensors")
                w3 = os.path.join(work, "init3.safetensors")
                proj.init(w2, 1234)
                proj.init(w3, 99)
                same = open(w1, "rb").read() == open(w2, "rb").read()
                other = dict(H.read_safetensors(w3))
                differs = any(not np.array_equal(v, other.get(k)) for k, v in got
                              if k in other and np.unique(v).size > 1)
                results.append((same and differs, "%s/init_seed same_seed_identical=%s "
                                "other_seed_differs=%s" % (tag, same, differs)))
            except (H.StepError, ValueError) as e:
                results.append((False, "%s/init_seed %s" % (tag, e)))

        # -- forward against the twin with random weights
        weights = random_weights(rng, sd)
        wpath = os.path.join(work, "random.safetensors")
        H.write_safetensors(wpath, weights)
        twin.load_state_dict({k: torch.from_numpy(v) for k, v in weights})
        xs = gen(rng, in_shape)
        xs = xs if isinstance(xs, list) else [xs]
        xpaths = []
        for i, x in enumerate(xs):
            xpaths.append(os.path.join(work, "x%d.npy" % i))
            np.save(xpaths[-1], x)
        with torch.no_grad():
            ref = twin(*[torch.from_numpy(x) for x in xs]).numpy()
            # float32 rounding of the oracle itself, for context in the report line
            xts = [torch.from_numpy(x) for x in xs]
            ref64 = twin.double()(*[t.double() if t.is_floating_point() else t
                                    for t in xts]).numpy()
        try:
            y = proj.infer(wpath, xpaths, os.path.join(work, "y.npy"))
        except H.StepError as e:
            results.append((False, "%s/forward stage=%s %s" % (tag, e.stage, e.detail)))
            return
        if y.shape != ref.shape or y.dtype != np.float32:
            results.append((False, "%s/forward result %s%s, expected float32%s" % (
                tag, y.dtype, list(y.shape), list(ref.shape))))
            return
        err = H.maxrel(y, ref64)
        results.append((err <= TOL, "%s/forward maxrel=%.3g vs float64 (torch f32 vs float64 %.3g, "
                         "ckc vs torch f32 %.3g; |ref| max %.3g)" % (
                             tag, err, H.maxrel(ref, ref64), H.maxrel(y, ref),
                             float(np.abs(ref).max()))))

        # -- a mismatched weights file is refused with the tensor's name, never computed
        first2d = next(k for k, v in weights if v.ndim >= 2)
        bad_files = [
            ("missing", [(k, v) for k, v in weights if k != weights[-1][0]], weights[-1][0]),
            ("extra", weights + [("not_a_param", np.zeros(3, np.float32))], "not_a_param"),
            ("shape", [(k, v.T.copy() if k == first2d else v) for k, v in weights], first2d),
            ("dtype", [(k, v.astype(np.float64) if k == first2d else v) for k, v in weights],
             first2d),
        ]
        problems = []
        for kind, tensors, must_name in bad_files:
            bpath = os.path.join(work, "bad_%s.safetensors" % kind)
            H.write_safetensors(bpath, tensors)
            try:
                proj.infer(bpath, xpaths, os.path.join(work, "bad.npy"))
                problems.append("%s: accepted" % kind)
            except H.StepError as e:
                if must_name not in e.detail:
                    problems.append("%s: message does not name %s: %s" % (kind, must_name, e.detail))
        results.append((not problems, "%s/bad_weights missing,extra,shape,dtype refused%s" % (
            tag, (": " + "; ".join(problems)) if problems else "")))
    except Exception as e:  # a harness problem is still a FAIL line
        results.append((False, "%s harness error %s: %s" % (tag, type(e).__name__, e)))
    finally:
        H.remove_workdir(work)


def main():
    print("# samples parity: tolerance max|ckc-torch64|/max(1,|torch64|) <= %g" % TOL, flush=True)
    flt = os.environ.get("CKC_SAMPLES_FILTER", "")
    failed = 0
    for spec in SAMPLES:
        if flt not in spec[0]:
            continue
        if not os.path.isfile(os.path.join(H.ROOT, spec[1])):
            print("FAIL sample/%s/build %s missing" % (spec[0], spec[1]))
            failed += 1
            continue
        results = []
        run_sample(spec, results)
        for ok, line in results:
            print(("PASS " if ok else "FAIL ") + line, flush=True)
            failed += 0 if ok else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
