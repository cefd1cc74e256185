"""test-suite/parity/ckc_harness.py - shared plumbing of the PyTorch parity tests.

Compiles a .ckm file with ckc for the c99 target, builds the generated project
with make, and runs its `init` / `infer` sub-commands on .npy and .safetensors
files written here with numpy alone (torch 1.13 has no safetensors module, so
the format is written by hand: 8-byte little-endian header length, JSON header,
raw little-endian data).

The metric of every comparison is the maximum relative error
    max |a - b| / max(1, |b|)      (b: the PyTorch float32 result)
so values near zero are judged by their absolute error.
"""

import json
import os
import shutil
import struct
import subprocess
import tempfile
import time

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CKC = os.path.join(ROOT, os.environ.get("CKC", "build/ckc")) \
    if not os.path.isabs(os.environ.get("CKC", "build/ckc")) else os.environ["CKC"]

ST_DTYPES = {"F32": np.float32, "F64": np.float64, "I32": np.int32, "U8": np.uint8,
             "BOOL": np.bool_}
NP_TO_ST = {np.dtype(v).str: k for k, v in ST_DTYPES.items()}


class StepError(Exception):
    """A pipeline stage failed; .stage names it (ckc, make, init, infer, ...)."""

    def __init__(self, stage, detail):
        super().__init__("%s: %s" % (stage, detail))
        self.stage = stage
        self.detail = detail


def tail(text, n=12):
    lines = (text or "").strip().splitlines()
    return " | ".join(lines[-n:])


def run(cmd, stage, cwd=None, timeout=300):
    # An exec failure (not a nonzero exit) is retried twice: during development
    # `make` may be relinking build/ckc at the very moment a case starts.
    for attempt in range(3):
        try:
            p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=timeout)
            break
        except subprocess.TimeoutExpired:
            raise StepError(stage, "timed out after %ds: %s" % (timeout, " ".join(cmd)))
        except OSError as e:
            if attempt == 2:
                raise StepError(stage, "cannot run %s: %s" % (cmd[0], e))
            time.sleep(2)
    out = p.stdout.decode("utf-8", "replace")
    if p.returncode != 0:
        raise StepError(stage, "exit %d: %s" % (p.returncode, tail(out)))
    return out


def write_safetensors(path, tensors):
    """tensors: list of (name, np.ndarray) written in that order."""
    header = {}
    blobs = []
    off = 0
    for name, arr in tensors:
        a = np.ascontiguousarray(arr)
        a = a.astype(a.dtype.newbyteorder("<"), copy=False)
        dt = NP_TO_ST[a.dtype.str if a.dtype.str[0] != "=" else "<" + a.dtype.str[1:]]
        b = a.tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Returns an ordered list of (name, np.ndarray); raises ValueError on a malformed file."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError("%s: shorter than 8 bytes" % path)
    (hlen,) = struct.unpack("<Q", raw[:8])
    if 8 + hlen > len(raw):
        raise ValueError("%s: header length %d past the end" % (path, hlen))
    header = json.loads(raw[8:8 + hlen].decode("utf-8"))
    base = 8 + hlen
    out = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        dt = np.dtype(ST_DTYPES[spec["dtype"]]).newbyteorder("<")
        a, b = spec["data_offsets"]
        n = int(np.prod(spec["shape"])) if spec["shape"] else 1
        if b - a != n * dt.itemsize or base + b > len(raw):
            raise ValueError("%s: tensor %s: bad data_offsets %s" % (path, name, spec["data_offsets"]))
        arr = np.frombuffer(raw[base + a:base + b], dtype=dt).reshape(spec["shape"])
        out.append((name, arr.copy()))
    return out


def maxrel(got, ref):
    """max |a-b| / max(1, |b|) in float64; inf on a shape mismatch, NaN counts as inf."""
    a = np.asarray(got, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    d = np.abs(a - b) / np.maximum(1.0, np.abs(b))
    nan_mismatch = np.isnan(a) != np.isnan(b)
    if nan_mismatch.any():
        return float("inf")
    d = np.where(np.isnan(a) & np.isnan(b), 0.0, d)
    return float(np.max(d))


class Project:
    """A .ckm program compiled and built in its own directory."""

    def __init__(self, workdir, ckm_path, exe_name, defines=()):
        self.dir = os.path.join(workdir, "out")
        self.ckm = ckm_path
        cmd = [CKC, ckm_path, "-t", "c99", "-o", self.dir]
        for d in defines:
            cmd += ["-D", d]
        run(cmd, "ckc", cwd=ROOT)
        run(["make", "-s", "-C", self.dir], "make", timeout=600)
        self.exe = os.path.join(self.dir, exe_name)
        if not os.path.isfile(self.exe):
            raise StepError("make", "no executable %s after make" % self.exe)

    def init(self, out_path, seed):
        run([self.exe, "init", "--seed", str(seed), "--out", out_path], "init")

    def infer(self, weights, inputs, out_path):
        cmd = [self.exe, "infer", "--weights", weights]
        for p in inputs:
            cmd += ["--in", p]
        cmd += ["--out", out_path]
        run(cmd, "infer")
        return np.load(out_path)


def make_workdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)


def remove_workdir(path):
    if os.environ.get("CKC_KEEP_TMP"):
        return
    shutil.rmtree(path, ignore_errors=True)
