"""peer.py: the PyTorch and numpy side of tapegrad's benchmark (bench/bench.c).

For each config it times one training step of the vanilla RNN cell, the same step that
bench.c times: h_0 = 0, h_t = tanh(W_h h_{t-1} + W_x x_t + b) for t = 1..T, loss = mean over
t of mse(h_t, y_t), backward, an SGD update, zeroed gradients. Two ways:

  seed_loop  the seed tutorial's style: an nn.Module holding W_h, W_x and b as Parameters,
             column convention (h is H x B), a Python for loop over T, loss.backward() and
             a hand-written SGD update under torch.no_grad()
  nn_rnn     torch.nn.RNN (tanh, sequence-major input T x B x I) and torch.optim.SGD

and numpy's float32 matrix products A@B, A@B.T and A.T@B. Everything runs on one thread
unless --threads says otherwise.

bench.c starts it with --serve and sends one request per line on stdin:
  rnn NAME I H B T BUDGET MIN_REPS WARMUP_REPS WARMUP_S
  matmul N BUDGET MIN_REPS WARMUP_REPS WARMUP_S
  quit
Run on its own, it times the configs it knows (see --help), and with --products also each
config's matrix products alone through numpy (time_products). Either way it prints
machine-readable lines:
  peer seed_loop M 1234.5 40     median microseconds per step, repetitions timed
  peer nn_rnn M 567.8 90
  peer numpy_ab 1024 45678.9 12  (also numpy_abt and numpy_atb)
  peer numpy_products L 9012.3 80  (--products; also numpy_products_batched)
  peer end                       after each request's answers
and, first, what it runs on ("peer info ...", "peer blas ...", "peer env ...", and "peer isa
blas=KIND[:core=CORE] torch=CAPABILITY": the instruction sets its products run), then
"peer ready", or "peer unavailable REASON" when neither torch nor numpy can be imported.
"""

import argparse
import math
import os
import statistics
import sys
import time

OPENBLAS_WORKAROUNDS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
LEARNING_RATE = 0.01
MAX_SAMPLES = 1 << 18

# name: (input I, hidden H, batch B, steps T), as in bench.c
CONFIGS = {
    "S": (3, 2, 1, 5),
    "M": (1, 32, 32, 50),
    "L": (64, 256, 64, 50),
    "XL": (256, 1024, 64, 20),
}
MATMUL_SIZES = (64, 256, 1024)
FULL_PLAN = (0.75, 5, 2, 0.1)      # budget s, min reps, warm-up reps, warm-up s
QUICK_PLAN = (0.02, 1, 1, 0.0)


def say(*words):
    print("peer", *words, flush=True)


def parse_args():
    parser = argparse.ArgumentParser(
        description="Time tapegrad's benchmark step in PyTorch and numpy's float32 matmul "
        "(run it with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, as bench.c does).")
    parser.add_argument("--serve", action="store_true",
                        help="take requests on stdin, one per line (how bench.c runs it)")
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated configs among %s (default: all)" % ",".join(CONFIGS))
    parser.add_argument("--matmul", default=",".join(str(n) for n in MATMUL_SIZES),
                        help="comma-separated matmul sizes, or none (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a short run, as bench --quick")
    parser.add_argument("--products", action="store_true",
                        help="run alone: also time each config's products alone through numpy "
                        "(see time_products)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads for torch and the BLAS (default 1)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads needs a whole number of at least 1")
    return args


# The thread count must be in the environment before numpy or torch loads its BLAS.
ARGS = parse_args()
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

try:
    import numpy as np
except ImportError as error:
    np = None
    NUMPY_ERROR = str(error)
try:
    import torch
    import torch.nn.functional as F
except ImportError as error:
    torch = None
    TORCH_ERROR = str(error)


def measure(step, plan):
    """The median time of step() in microseconds, and how many runs that is the median of."""
    budget, min_reps, warmup_reps, warmup_s = plan
    start = time.perf_counter()
    done = 0
    while done < warmup_reps or time.perf_counter() - start < warmup_s:
        step()
        done += 1
    samples = []
    start = time.perf_counter()
    while len(samples) < MAX_SAMPLES and (len(samples) < min_reps or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        step()
        samples.append(time.perf_counter() - t0)
    return 1e6 * statistics.median(samples), len(samples)


# ---- what it runs on -------------------------------------------------------------------------

def loaded_libraries(words):
    """Paths of the shared libraries mapped into this process whose file name holds one of words."""
    found = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1]
                name = os.path.basename(path).lower()
                if path.startswith("/") and any(w in name for w in words) and path not in found:
                    found.append(path)
    except OSError:
        pass
    return found


def blas_kind(path):
    real = os.path.realpath(path)
    lower = real.lower()
    if "openblas" in lower:
        return real, "OpenBLAS"
    if "mkl" in lower:
        return real, "MKL"
    if "blis" in lower:
        return real, "BLIS"
    if "atlas" in lower:
        return real, "ATLAS"
    if "/blas/libblas" in lower:
        return real, "netlib-reference-BLAS"
    return real, "unknown"


def openblas_details(path):
    """OpenBLAS's own account of its core and threads, asked through ctypes."""
    import ctypes
    try:
        lib = ctypes.CDLL(path)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        lib.openblas_get_config.restype = ctypes.c_char_p
        return "core=%s threads=%d config=%s" % (
            lib.openblas_get_corename().decode(), lib.openblas_get_num_threads(),
            lib.openblas_get_config().decode().replace(" ", "_"))
    except (OSError, AttributeError) as error:
        return "core=unknown (%s)" % error


def openblas_core(path):
    """The core type OpenBLAS chose its kernels for (Haswell, SkylakeX, Zen...), or None."""
    import ctypes
    try:
        lib = ctypes.CDLL(path)
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return None


def torch_cpu_capability():
    """The vector instruction set torch's own CPU kernels run ("AVX2", "AVX512", ...): the
    "CPU capability usage" line of its build configuration, or "unknown"."""
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage:" in line:
            return line.split(":", 1)[1].strip()
    return "unknown"


def describe_isa(paths):
    """One line naming the instruction sets the peer's products run: its BLAS's (for OpenBLAS
    the core type it picked) and torch's own kernels'."""
    kinds = []
    for path in paths:
        real, kind = blas_kind(path)
        core = openblas_core(real) if kind == "OpenBLAS" else None
        kinds.append("%s:core=%s" % (kind, core) if core else kind)
    words = ["blas=%s" % (",".join(kinds) if kinds else "none-found")]
    if torch is not None:
        words.append("torch=%s" % torch_cpu_capability())
    say("isa", *words)


def describe_blas():
    """Lines naming the BLAS that numpy and torch actually run (threadpoolctl when present,
    else the libraries mapped into this process after a product has been computed)."""
    if np is not None:
        a = np.ones((8, 8), dtype=np.float32)
        a @ a
    if torch is not None:
        t = torch.ones(64, 64)
        t @ t
    try:
        from threadpoolctl import threadpool_info
        for pool in threadpool_info():
            if pool.get("user_api") == "blas":
                say("blas", "threadpoolctl", pool.get("internal_api"), pool.get("version"),
                    "core=%s" % pool.get("architecture"), "threads=%s" % pool.get("num_threads"),
                    pool.get("filepath"))
    except ImportError:
        pass
    paths = loaded_libraries(("blas", "mkl", "blis", "atlas"))
    if not paths:
        say("blas", "none-found-in-/proc/self/maps")
    for path in paths:
        real, kind = blas_kind(path)
        details = openblas_details(real) if kind == "OpenBLAS" else ""
        say("blas", kind, real, details)
    if torch is not None:
        config = torch.__config__.show()
        settings = [w.strip(",") for w in config.split() if w.startswith(("BLAS_INFO=", "LAPACK_INFO="))]
        say("info", "torch-build", *settings, "mkldnn=%s" % torch.backends.mkldnn.is_available())
    describe_isa(paths)
    if any(blas_kind(p)[1] == "netlib-reference-BLAS" for p in paths):
        say("note", "the BLAS loaded here is the netlib reference one, not OpenBLAS: its products are",
            "plain loops, so numpy's numbers are no ceiling and torch's large products are slow")


def introduce():
    for variable in OPENBLAS_WORKAROUNDS:
        say("env", variable, repr(os.environ[variable]) if variable in os.environ else "unset")
    say("info", "python", sys.version.split()[0], "numpy", np.__version__ if np is not None else "missing",
        "torch", torch.__version__ if torch is not None else "missing", "threads", ARGS.threads)
    if np is None:
        say("note", "numpy not importable (%s): no matmul numbers" % NUMPY_ERROR)
    if torch is None:
        say("note", "torch not importable (%s): no RNN numbers" % TORCH_ERROR)
    describe_blas()


# ---- the training step, two ways ------------------------------------------------------------

def step_data(input_size, hidden, batch, steps):
    """Fixed random inputs in [-1, 1) and targets in [-0.9, 0.9), made before any timing."""
    gen = torch.Generator().manual_seed(42)
    x = torch.rand(steps, input_size, batch, generator=gen) * 2 - 1      # T x I x B
    y = torch.rand(steps, hidden, batch, generator=gen) * 1.8 - 0.9      # T x H x B
    return x, y


if torch is not None:
    class SeedCell(torch.nn.Module):
        """h_t = tanh(W_h h_{t-1} + W_x x_t + b), one column per sequence; PyTorch's init."""

        def __init__(self, input_size, hidden):
            super().__init__()
            bound = 1.0 / math.sqrt(hidden)
            self.W_h = torch.nn.Parameter(torch.empty(hidden, hidden).uniform_(-bound, bound))
            self.W_x = torch.nn.Parameter(torch.empty(hidden, input_size).uniform_(-bound, bound))
            self.b = torch.nn.Parameter(torch.zeros(hidden, 1))

        def forward(self, x_t, h_prev):            # x_t: I x B, h_prev: H x B
            return torch.tanh(self.W_h @ h_prev + self.W_x @ x_t + self.b)


def seed_loop_step(input_size, hidden, batch, steps):
    cell = SeedCell(input_size, hidden)
    x, y = step_data(input_size, hidden, batch, steps)

    def step():
        h = torch.zeros(hidden, batch)
        losses = []
        for t in range(steps):
            h = cell(x[t], h)
            losses.append(F.mse_loss(h, y[t]))
        loss = torch.stack(losses).mean()
        loss.backward()
        with torch.no_grad():
            for p in cell.parameters():
                p -= LEARNING_RATE * p.grad
                p.grad.zero_()
    return step


def nn_rnn_step(input_size, hidden, batch, steps):
    rnn = torch.nn.RNN(input_size, hidden, nonlinearity="tanh")
    optimizer = torch.optim.SGD(rnn.parameters(), lr=LEARNING_RATE)
    x, y = step_data(input_size, hidden, batch, steps)
    x = x.permute(0, 2, 1).contiguous()          # T x B x I, as nn.RNN takes it
    y = y.permute(0, 2, 1).contiguous()          # T x B x H

    def step():
        out, _ = rnn(x)                          # h_0 = 0; out: T x B x H
        # every t has B H values, so the mean over all of them is the mean over t of each mse
        loss = F.mse_loss(out, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return step


def time_rnn(name, sizes, plan):
    if torch is None:
        say("note", "no RNN numbers for %s: torch not importable" % name)
        return
    for kind, make in (("seed_loop", seed_loop_step), ("nn_rnn", nn_rnn_step)):
        us, reps = measure(make(*sizes), plan)
        say(kind, name, "%.3f" % us, reps)


# ---- numpy's matrix products ------------------------------------------------------------------

def time_matmul(n, plan):
    if np is None:
        say("note", "no matmul numbers for %d: numpy not importable" % n)
        return
    rng = np.random.default_rng(n)
    a = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, n)).astype(np.float32)
    c = np.empty((n, n), dtype=np.float32)            # written in place: no allocation is timed
    products = (("numpy_ab", a, b), ("numpy_abt", a, b.T), ("numpy_atb", a.T, b))
    for kind, left, right in products:
        us, reps = measure(lambda: np.matmul(left, right, out=c), plan)
        say(kind, n, "%.3f" % us, reps)


# ---- the products of a step alone ---------------------------------------------------------

def time_products(name, sizes, plan):
    """The products one training step cannot skip (W_x x_t and W_h h_t-1 forward, d(W_h) +=
    d(pre) h^T and d(W_x) += d(pre) x^T, d(h_t-1) = W_h^T d(pre) for t > 1) through numpy,
    with nothing else: per time step, as tapegrad's tape runs them, and batched over the T
    steps where nn.RNN batches them (W_x x, d(W_h), d(W_x)). Each time step has operands of
    its own, as in a step. The floor under a step built on this BLAS: compare with floor.c's
    for tapegrad's kernels, and with nn.RNN's step over the goal's ratio."""
    if np is None:
        say("note", "no products for %s: numpy not importable" % name)
        return
    input_size, hidden, batch, steps = sizes
    rng = np.random.default_rng(7)

    def uniform(*shape):
        return rng.uniform(-1, 1, shape).astype(np.float32)
    W_h, W_x = uniform(hidden, hidden), uniform(hidden, input_size)
    h, d_pre = uniform(steps, hidden, batch), uniform(steps, hidden, batch)
    x = uniform(steps, input_size, batch)
    d_W_h, d_W_x = np.empty_like(W_h), np.empty_like(W_x)
    out = np.empty((steps, hidden, batch), dtype=np.float32)
    out_x = np.empty_like(out)

    def per_step():      # numpy has no C += A B: the weight gradients are overwritten
        for t in range(steps):
            np.matmul(W_x, x[t], out=out_x[t])
            np.matmul(W_h, h[t], out=out[t])
        for t in reversed(range(steps)):
            np.matmul(d_pre[t], h[t].T, out=d_W_h)
            np.matmul(d_pre[t], x[t].T, out=d_W_x)
            if t > 0:
                np.matmul(W_h.T, d_pre[t], out=out[t])

    # column t*B + j of these is sequence j at time t
    h_all = h.transpose(1, 0, 2).reshape(hidden, steps * batch)
    x_all = x.transpose(1, 0, 2).reshape(input_size, steps * batch)
    d_pre_all = d_pre.transpose(1, 0, 2).reshape(hidden, steps * batch)
    from_input = np.empty((hidden, steps * batch), dtype=np.float32)

    def batched():
        np.matmul(W_x, x_all, out=from_input)
        for t in range(steps):
            np.matmul(W_h, h[t], out=out[t])
        np.matmul(d_pre_all, h_all.T, out=d_W_h)
        np.matmul(d_pre_all, x_all.T, out=d_W_x)
        for t in range(1, steps):
            np.matmul(W_h.T, d_pre[t], out=out[t])

    for kind, step in (("numpy_products", per_step), ("numpy_products_batched", batched)):
        us, reps = measure(step, plan)
        say(kind, name, "%.3f" % us, reps)


# ---- driving it -------------------------------------------------------------------------------

def serve():
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            return
        try:
            if words[0] == "rnn" and len(words) == 10:
                sizes = tuple(int(w) for w in words[2:6])
                plan = (float(words[6]), int(words[7]), int(words[8]), float(words[9]))
                time_rnn(words[1], sizes, plan)
            elif words[0] == "matmul" and len(words) == 6:
                plan = (float(words[2]), int(words[3]), int(words[4]), float(words[5]))
                time_matmul(int(words[1]), plan)
            else:
                say("note", "bad request:", line.strip())
        except ValueError:
            say("note", "bad request:", line.strip())
        say("end")


def run_alone():
    plan = QUICK_PLAN if ARGS.quick else FULL_PLAN
    for name in ARGS.configs.split(","):
        if name not in CONFIGS:
            sys.exit("peer.py: unknown config %r" % name)
        time_rnn(name, CONFIGS[name], plan)
        if ARGS.products:
            time_products(name, CONFIGS[name], plan)
    if ARGS.matmul != "none":
        for size in ARGS.matmul.split(","):
            time_matmul(int(size), plan)


def main():
    if torch is None and np is None:
        say("unavailable", "neither torch (%s) nor numpy (%s) can be imported" % (TORCH_ERROR, NUMPY_ERROR))
        return
    if torch is not None:
        torch.set_num_threads(ARGS.threads)
    introduce()
    if ARGS.serve:
        say("ready")
        serve()
    else:
        run_alone()


if __name__ == "__main__":
    main()
