/* bench.c: how fast tapegrad trains the vanilla RNN cell, next to PyTorch on the same machine.
 *
 * One training step, as a user writes it: reset the tape, bring the data in without a
 * gradient (as in PyTorch, where it does not require grad): x_t and the targets with
 * tg_constant_view, read in place from the arrays made once before the steps (as the peer
 * makes its tensors once), h_0 = 0 with tg_constant; run the cell over T steps from h_0 = 0,
 * loss = (1/T) sum over t of mse(h_t, y_t), zero the grads, tg_backward, tg_sgd_step. Each
 * config is warmed up, then timed step by step until a time budget and a minimum count are
 * both reached; we report the median step time and GFLOP/s, counting 6 T B H (H + I) flops
 * per step (2 T B H (H + I) for the products of the forward pass and twice that for the
 * backward pass).
 *
 * A matmul microbenchmark times the three products the cell needs, through the public API:
 * A B is one tg_matmul; A B^T and A^T B are timed together as one tg_backward through a
 * tg_matmul, whose backward is exactly one of each (plus filling dy with ones for tg_sum).
 *
 * The peer, bench/peer.py, times the same step in PyTorch (a hand-written cell in a Python
 * loop, and torch.nn.RNN) and numpy's float32 matmul, one thread. It runs as a child process
 * that takes one request at a time on its stdin, so the two sides take turns config by
 * config. It is optional: without python3, torch or numpy the table has no ratios.
 *
 * With the peer's times and one thread, the bench also measures this core's peak (a loop of
 * independent FMAs, nothing else) and prints what each ratio goal asks of a whole step as a
 * share of it: a goal that needs most of the peak for everything a step does is out of
 * reach for any code, however fast its products. bench/floor.c times those products alone.
 * What the two programs share (the configs, the step, the peak) is in bench/common.c.
 *
 * It prints the instruction set each side ran: ours is the path the kernels chose at run time
 * (the one call into src/kernels.h, private to the library), the peer's its BLAS's core type
 * and torch's CPU capability, as bench/peer.py reports them. */
#define _GNU_SOURCE                    /* sched_getcpu and sched_setaffinity (Linux) */

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "kernels.h"

#define DATA_SEED 42u
#define MAX_SAMPLES (1 << 18)          /* per measurement; a tiny step stops here */
#define MATMUL_GOAL_N 1024             /* the size the A*B goal is set at, as a share of the
                                        * FMA peak (matmul_goal_percent: per host kind) */
#define PEER_PYTHON "/usr/bin/python3"
#define PEER_SCRIPT "bench/peer.py"
#define LINE_MAX_LEN 512
#define QUICK_PEER_MAX_FLOPS 2e9       /* --quick: the peer skips bigger repetitions unless asked */
#define DEFAULT_ROUNDS 3
#define ROUND_TRIPS 20000              /* per measurement of the cores' round trip (--threads) */

static const char USAGE[] =
    "usage: bench [--configs LIST] [--matmul LIST] [--quick] [--rounds N] [--threads N]\n"
    "             [--peer | --no-peer] [--peer-script FILE]\n"
    "Times one training step of tapegrad's vanilla RNN cell (forward over T steps, mean MSE,\n"
    "tg_backward, SGD) and the matrix products behind it, and compares them with PyTorch and\n"
    "numpy on one thread when " PEER_PYTHON " can run the peer script.\n"
    "  --configs LIST      comma-separated configs among S,M,L,XL, or none (default: all)\n"
    "                        S: I=3 H=2 B=1 T=5      M: I=1 H=32 B=32 T=50\n"
    "                        L: I=64 H=256 B=64 T=50 XL: I=256 H=1024 B=64 T=20\n"
    "  --matmul LIST       comma-separated square sizes among 64,256,1024, or none (default: all)\n"
    "  --quick             a short run for CI: 1 warm-up and about 20 ms per measurement; the peer\n"
    "                      skips what costs over 2 GFLOP a repetition (XL, n = 1024) unless it is\n"
    "                      named in --configs or --matmul\n"
    "  --rounds N          measure each config and size N times, taking turns with the peer each\n"
    "                      time, and report the median of the N medians (default 3; 1 with --quick)\n"
    "  --threads N         threads for tapegrad (tg_set_threads) and for the peer's torch and BLAS,\n"
    "                      1 to 64 (default 1); above 1, tapegrad is also timed on one thread in\n"
    "                      each round and a table gives the speed-up, with the time a cache line\n"
    "                      takes to go between two threads and back (how far apart their cores are)\n"
    "  --peer              require the peer: exit with status 1 when it cannot run\n"
    "  --no-peer           do not start the peer\n"
    "  --peer-script FILE  the peer script (default " PEER_SCRIPT ")\n"
    "  --help              print this and exit\n"
    "Each measurement warms up (1 repetition and 0.2 s), then runs for 0.75 s and at least 5\n"
    "repetitions, and reports the median; rounds spread the measurements over time, so that a\n"
    "burst of other work on the machine moves one round's median and not the result.\n"
    "Without --peer or --no-peer the peer is tried and, when it cannot run, left out with a note.\n"
    "The peer runs with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment.\n"
    "Goals (issue 17) depend on the host: with AVX-512, S >= 200x, M >= 10x, L >= 3x, XL >= 2x\n"
    "nn.RNN and the 1024 x 1024 product at >= 80% of the FMA peak; AVX2 only: S and M the same, L\n"
    "and XL within 1.1x of make bench-floor, the product at >= 85%; 2 threads: L >= 1.4x, XL >= 1.6x.\n"
    "Exit status: 0 when every measurement ran (goals met or not), 1 on a failure, 2 on a bad\n"
    "command line.\n";

/* ---- what is measured ---------------------------------------------------------------------- */

static const int MATMUL_SIZES[] = { 64, 256, 1024 };
#define N_MATMUL (int)(sizeof MATMUL_SIZES / sizeof MATMUL_SIZES[0])

/* How long to measure: warm up for warmup_reps and at least warmup_s seconds, then time
 * repetitions until both budget_s seconds and min_reps repetitions are reached. */
typedef struct plan {
    int warmup_reps, min_reps;
    double warmup_s, budget_s;
} plan;

static const plan FULL_PLAN = { 1, 5, 0.2, 0.75 };
static const plan QUICK_PLAN = { 1, 1, 0.0, 0.02 };

typedef struct options {
    bool run_config[N_CONFIGS];
    bool run_matmul[N_MATMUL];
    bool configs_named, matmul_named; /* --configs, --matmul given */
    bool quick;
    int rounds;                        /* 0: the default for the plan */
    int threads;
    int peer;                          /* -1: no, 0: try, 1: required */
    const char *peer_script;
} options;

/* A median time, how many repetitions it is the median of, and the fastest of them (NAN
 * where only a median is known: the peer's). */
typedef struct timing {
    double us;
    int reps;
    double fastest_us;
} timing;

static const timing NO_TIMING = { NAN, 0, NAN };

/* ---- the command line ------------------------------------------------------------------- */


/* Marks in chosen[] the names of a comma-separated list; names[i] is entry i. */
static void parse_list(const char *flag, const char *text, const char *const *names, int n, bool *chosen)
{
    if (!text)
        usage_error("bench", "%s needs a value", flag);
    if (!parse_names(text, names, n, chosen))
        usage_error("bench", "unknown entry in the list '%s'", text);
}

/* A whole number from 1 to 64 given to flag. */
static int parse_count(const char *flag, const char *text)
{
    char *end = NULL;
    long n = text ? strtol(text, &end, 10) : 0;
    if (!text || end == text || *end != '\0' || n < 1 || n > 64) {
        fprintf(stderr, "bench: %s needs a whole number from 1 to 64, got '%s' (see bench --help)\n", flag,
                text ? text : "");
        exit(2);
    }
    return (int)n;
}

static options parse_args(int argc, char **argv)
{
    options opt = { .threads = 1, .peer = 0, .peer_script = PEER_SCRIPT };
    for (int i = 0; i < N_CONFIGS; i++)
        opt.run_config[i] = true;
    for (int i = 0; i < N_MATMUL; i++)
        opt.run_matmul[i] = true;
    const char *config_names[N_CONFIGS], *matmul_names[N_MATMUL];
    static const char *const SIZE_NAMES[N_MATMUL] = { "64", "256", "1024" };
    for (int i = 0; i < N_CONFIGS; i++)
        config_names[i] = CONFIGS[i].name;
    for (int i = 0; i < N_MATMUL; i++)
        matmul_names[i] = SIZE_NAMES[i];

    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (strcmp(flag, "--help") == 0 || strcmp(flag, "-h") == 0) {
            fputs(USAGE, stdout);
            exit(0);
        } else if (strcmp(flag, "--quick") == 0) {
            opt.quick = true;
        } else if (strcmp(flag, "--peer") == 0) {
            opt.peer = 1;
        } else if (strcmp(flag, "--no-peer") == 0) {
            opt.peer = -1;
        } else if (strcmp(flag, "--configs") == 0) {
            parse_list(flag, i + 1 < argc ? argv[++i] : NULL, config_names, N_CONFIGS, opt.run_config);
            opt.configs_named = true;
        } else if (strcmp(flag, "--matmul") == 0) {
            parse_list(flag, i + 1 < argc ? argv[++i] : NULL, matmul_names, N_MATMUL, opt.run_matmul);
            opt.matmul_named = true;
        } else if (strcmp(flag, "--threads") == 0) {
            opt.threads = parse_count(flag, i + 1 < argc ? argv[++i] : NULL);
        } else if (strcmp(flag, "--rounds") == 0) {
            opt.rounds = parse_count(flag, i + 1 < argc ? argv[++i] : NULL);
        } else if (strcmp(flag, "--peer-script") == 0) {
            if (i + 1 >= argc)
                usage_error("bench", "%s needs a value", flag);
            opt.peer_script = argv[++i];
        } else {
            usage_error("bench", "unknown flag '%s'", flag);
        }
    }
    return opt;
}

/* ---- timing --------------------------------------------------------------------------------- */

/* One repetition of what is measured: sets *seconds to the time of its timed part and
 * returns 0, or returns -1 after printing what failed. */
typedef int (*rep_fn)(void *ctx, double *seconds);

/* Runs rep per the plan; *out gets the median and the fastest of the timed repetitions (not
 * the warm-up). Returns 0, or -1 when a repetition failed or memory ran out. */
static int measure(rep_fn rep, void *ctx, const plan *p, timing *out)
{
    double seconds, start = now();
    for (int i = 0; i < p->warmup_reps || now() - start < p->warmup_s; i++)
        if (rep(ctx, &seconds) != 0)
            return -1;
    double *samples = malloc(MAX_SAMPLES * sizeof *samples);
    if (!samples) {
        fprintf(stderr, "bench: out of memory\n");
        return -1;
    }
    int n = 0;
    start = now();
    while (n < MAX_SAMPLES && (n < p->min_reps || now() - start < p->budget_s)) {
        if (rep(ctx, &samples[n]) != 0) {
            free(samples);
            return -1;
        }
        n++;
    }
    double median = median_of(samples, n);
    double fastest = samples[0];
    free(samples);
    *out = (timing){ 1e6 * median, n, 1e6 * fastest };
    return 0;
}

/* ---- the flops and bytes of a step ----------------------------------------------------------- */

static double step_flops(const config *c)
{
    return 6.0 * c->steps * c->batch * c->hidden * (double)(c->hidden + c->input);
}

/* The bytes one step needs, from the sizes alone: every parameter and its grad, and every
 * tensor train_step puts on the tape, with its grad unless it is a constant. Per time step
 * that is W_x x_t + b, W_h h plus that, and tanh of it (H x B each: the cell's two
 * tg_matmul_add and its tg_tanh) and the 1 x 1 mse (x_t and y_t are views of the data, not
 * on the tape); plus the constant h_0 (H x B), the T - 1 running totals and the scaled loss
 * (1 x 1 each). */
static double logical_bytes(const config *c)
{
    double I = c->input, H = c->hidden, B = c->batch, T = c->steps;
    double params = H * H + H * I + H;
    double with_grads = params + T * (3.0 * H * B + 1.0) + (T - 1.0) + 1.0;
    double constants = H * B; /* h_0; x_t and y_t are views of the caller's arrays */
    return sizeof(float) * (2.0 * with_grads + constants);
}

static double param_bytes(const config *c)
{
    double H = c->hidden, I = c->input;
    return 2.0 * sizeof(float) * (H * H + H * I + H);
}

/* ---- the matmul microbenchmark ------------------------------------------------------------ */

typedef struct matmul_bench {
    int n;
    tg_tensor *A, *B;                  /* parameters, so that no copy is timed with the product */
    tg_tensor *params[2];
    tg_tape *tape;
} matmul_bench;

static bool matmul_bench_init(matmul_bench *m, int n)
{
    tg_rng rng = tg_rng_new(DATA_SEED + (uint64_t)n);
    *m = (matmul_bench){ .n = n };
    m->A = tg_param_new(n, n);
    m->B = tg_param_new(n, n);
    m->tape = tg_tape_new();
    if (!m->A || !m->B || !m->tape)
        return false;
    tg_init_uniform(m->A, -1.0f, 1.0f, &rng, NULL);
    tg_init_uniform(m->B, -1.0f, 1.0f, &rng, NULL);
    m->params[0] = m->A;
    m->params[1] = m->B;
    return true;
}

static void matmul_bench_free(matmul_bench *m)
{
    tg_param_free(m->A);
    tg_param_free(m->B);
    tg_tape_free(m->tape);
}

/* C = A B: the tg_matmul call alone (recording the node, zeroing its grad, the product). */
static int matmul_forward(void *ctx, double *seconds)
{
    matmul_bench *m = ctx;
    tg_tape_reset(m->tape);
    double start = now();
    tg_tensor *C = tg_matmul(m->tape, m->A, m->B);
    *seconds = now() - start;
    if (!C) {
        fprintf(stderr, "bench: matmul %d: %s\n", m->n, tg_tape_error(m->tape));
        return -1;
    }
    return 0;
}

/* dA += dC B^T and dB += A^T dC: the tg_backward call alone, through loss = sum(A B). Besides
 * the two products it sets dC to ones (n^2 writes, against 2 n^3 multiply-adds). */
static int matmul_backward(void *ctx, double *seconds)
{
    matmul_bench *m = ctx;
    tg_tape_reset(m->tape);
    tg_zero_grad(m->params, 2, NULL);
    tg_tensor *loss = tg_sum(m->tape, tg_matmul(m->tape, m->A, m->B));
    double start = now();
    int status = tg_backward(m->tape, loss);
    *seconds = now() - start;
    if (status != 0) {
        fprintf(stderr, "bench: matmul %d: %s\n", m->n, tg_tape_error(m->tape));
        return -1;
    }
    return 0;
}

/* ---- the peer -------------------------------------------------------------------------------- */

typedef struct peer {
    bool alive;
    pid_t pid;
    FILE *to, *from;                   /* its stdin and stdout */
    char note[LINE_MAX_LEN];           /* why it is not running, when it is not */
    char info[16][LINE_MAX_LEN];       /* the lines it introduces itself with */
    int n_info;
} peer;

/* Starts script under PEER_PYTHON with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from
 * its environment and waits for its first answer. On failure p->alive is false and p->note
 * says why. */
static void peer_start(peer *p, const char *script, int threads)
{
    *p = (peer){ .pid = -1 };
    if (access(PEER_PYTHON, X_OK) != 0) {
        snprintf(p->note, sizeof p->note, "%s not found", PEER_PYTHON);
        return;
    }
    if (access(script, R_OK) != 0) {
        snprintf(p->note, sizeof p->note, "%s not readable (run from the repository root)", script);
        return;
    }
    int down[2], up[2];                /* down: we write, it reads; up: it writes, we read */
    if (pipe(down) != 0)
        goto broken;
    if (pipe(up) != 0) {
        close(down[0]);
        close(down[1]);
        goto broken;
    }
    fflush(NULL);
    p->pid = fork();
    if (p->pid == 0) {
        dup2(down[0], STDIN_FILENO);
        dup2(up[1], STDOUT_FILENO);
        close(down[0]);
        close(down[1]);
        close(up[0]);
        close(up[1]);
        unsetenv("OPENBLAS_CORETYPE");
        unsetenv("OPENBLAS_L2_SIZE");
        char thread_arg[16];
        snprintf(thread_arg, sizeof thread_arg, "%d", threads);
        execl(PEER_PYTHON, PEER_PYTHON, script, "--serve", "--threads", thread_arg, (char *)NULL);
        _exit(127);
    }
    close(down[0]);
    close(up[1]);
    if (p->pid < 0) {
        close(down[1]);
        close(up[0]);
        goto broken;
    }
    p->to = fdopen(down[1], "w");
    p->from = fdopen(up[0], "r");
    if (!p->to || !p->from) {
        if (!p->to)
            close(down[1]);
        if (!p->from)
            close(up[0]);
        goto broken;
    }
    p->alive = true;

    char line[LINE_MAX_LEN];
    while (fgets(line, sizeof line, p->from)) {
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, "peer ready") == 0)
            return;
        if (strncmp(line, "peer unavailable ", 17) == 0) {
            snprintf(p->note, sizeof p->note, "%s", line + 17);
            p->alive = false;
            return;
        }
        if (p->n_info < (int)(sizeof p->info / sizeof p->info[0]))
            snprintf(p->info[p->n_info++], sizeof p->info[0], "%s", line);
    }
    snprintf(p->note, sizeof p->note, "%s %s exited before it was ready", PEER_PYTHON, script);
    p->alive = false;
    return;
broken:
    snprintf(p->note, sizeof p->note, "could not start %s: %s", PEER_PYTHON, strerror(errno));
    p->alive = false;
}

/* Ends the peer, whether it is alive or not; returns its exit status, or -1. */
static int peer_stop(peer *p)
{
    if (p->to) {
        if (p->alive)
            fputs("quit\n", p->to);
        fclose(p->to);
    }
    if (p->from)
        fclose(p->from);
    int status = -1;
    if (p->pid > 0 && waitpid(p->pid, &status, 0) == p->pid && WIFEXITED(status))
        return WEXITSTATUS(status);
    return -1;
}

/* Sends one request and reads the answers up to "peer end": each "peer KIND NAME US REPS"
 * whose KIND is kinds[i] and NAME is name sets out[i]. Returns false (and stops using the
 * peer) when it has gone away. */
static bool peer_ask(peer *p, const char *request, const char *name,
                     const char *const *kinds, int n, timing *out)
{
    for (int i = 0; i < n; i++)
        out[i] = NO_TIMING;
    if (!p->alive)
        return false;
    if (fprintf(p->to, "%s\n", request) < 0 || fflush(p->to) != 0)
        goto gone;
    char line[LINE_MAX_LEN];
    while (fgets(line, sizeof line, p->from)) {
        if (strncmp(line, "peer end", 8) == 0)
            return true;
        char kind[64], which[64];
        double us;
        int reps;
        if (sscanf(line, "peer %63s %63s %lf %d", kind, which, &us, &reps) != 4 || strcmp(which, name) != 0) {
            fputs(line, stdout);       /* a note from the peer: pass it on */
            continue;
        }
        for (int i = 0; i < n; i++)
            if (strcmp(kind, kinds[i]) == 0)
                out[i] = (timing){ us, reps, NAN };
    }
gone:
    snprintf(p->note, sizeof p->note, "the peer stopped answering");
    printf("note: %s; the rest has no peer numbers\n", p->note);
    p->alive = false;
    return false;
}

/* True when the peer said that its BLAS is the netlib reference implementation. */
static bool peer_saw_reference_blas(const peer *p)
{
    for (int i = 0; i < p->n_info; i++)
        if (strstr(p->info[i], "netlib-reference-BLAS"))
            return true;
    return false;
}

/* What the peer said its products run on (its "peer isa" line, without those words), or a
 * note when it said nothing. */
static const char *peer_isa(const peer *p)
{
    for (int i = 0; i < p->n_info; i++)
        if (strncmp(p->info[i], "peer isa ", 9) == 0)
            return p->info[i] + 9;
    return "(not reported)";
}

/* ---- the report ------------------------------------------------------------------------------ */

/* The 1-minute load average, or NaN where /proc/loadavg cannot be read. */
static double load_average(void)
{
    double load = NAN;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &load) != 1)
            load = NAN;
        fclose(f);
    }
    return load;
}

static void print_machine(void)
{
    char model[256] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[512];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *colon = strchr(line, ':');
                if (colon) {
                    snprintf(model, sizeof model, "%s", colon + 2);
                    model[strcspn(model, "\n")] = '\0';
                }
                break;
            }
        fclose(f);
    }
    char date[64] = "unknown date";
    time_t t = time(NULL);
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", &tm);
    printf("machine: %s, %ld CPUs online, load average %.2f (1 min; other work on the machine adds noise)\n",
           model, sysconf(_SC_NPROCESSORS_ONLN), load_average());
    printf("date: %s\n", date);
#if defined(__clang__)
    printf("bench compiled with: clang %s (the library's flags are its Makefile's)\n", __clang_version__);
#elif defined(__GNUC__)
    printf("bench compiled with: gcc %s (the library's flags are its Makefile's)\n", __VERSION__);
#endif
}

static void print_env_var(const char *name)
{
    const char *value = getenv(name);
    printf("  %s here: %s%s%s\n", name, value ? "'" : "unset", value ? value : "", value ? "'" : "");
}

/* "123.4" or "-" for a missing number, right-aligned in width. */
static void print_number(int width, const char *format, double value)
{
    char text[64];
    if (isnan(value))
        snprintf(text, sizeof text, "-");
    else
        snprintf(text, sizeof text, format, value);
    printf("%*s", width, text);
}

/* ---- main ------------------------------------------------------------------------------------ */

typedef struct rnn_result {
    bool ran, peer_skipped;
    timing ours, seed, nn_rnn;
    timing one_thread;                 /* ours on one thread, when --threads asks for more */
    double round_trip_ns;              /* then also: the cores' round trip (median of the rounds) */
    double logical, actual;            /* bytes, for the memory report */
} rnn_result;

typedef struct matmul_result {
    bool ran, peer_skipped;
    timing ab, pair;                   /* ours: A B; A B^T and A^T B in one tg_backward */
    timing np_ab, np_abt, np_atb;      /* numpy's */
} matmul_result;

/* Times tapegrad's step for c; *reserved gets the arena's size plus the parameters. */
static int time_ours(const config *c, const plan *pl, timing *t, double *reserved)
{
    rnn_bench b;
    int status = -1;
    if (!rnn_bench_init(&b, c, "bench"))
        fprintf(stderr, "bench: config %s: out of memory\n", c->name);
    else
        status = measure(train_step, &b, pl, t);
    if (status == 0)
        *reserved = (double)tg_tape_reserved_bytes(b.tape) + param_bytes(c);
    rnn_bench_free(&b);
    return status;
}

static int run_config(const config *c, const plan *pl, bool ask_peer, peer *p, rnn_result *r)
{
    if (time_ours(c, pl, &r->ours, &r->actual) != 0)
        return -1;
    r->ran = true;
    r->logical = logical_bytes(c);

    char request[LINE_MAX_LEN];
    snprintf(request, sizeof request, "rnn %s %d %d %d %d %g %d %d %g", c->name, c->input, c->hidden,
             c->batch, c->steps, pl->budget_s, pl->min_reps, pl->warmup_reps, pl->warmup_s);
    static const char *const KINDS[] = { "seed_loop", "nn_rnn" };
    timing peer_times[2] = { NO_TIMING, NO_TIMING };
    if (ask_peer)
        peer_ask(p, request, c->name, KINDS, 2, peer_times);
    r->peer_skipped = !ask_peer && p->alive;
    r->seed = peer_times[0];
    r->nn_rnn = peer_times[1];
    return 0;
}

static int run_matmul(int n, const plan *pl, bool ask_peer, peer *p, matmul_result *r)
{
    matmul_bench m;
    int status = -1;
    if (!matmul_bench_init(&m, n))
        fprintf(stderr, "bench: matmul %d: out of memory\n", n);
    else if ((status = measure(matmul_forward, &m, pl, &r->ab)) == 0)
        status = measure(matmul_backward, &m, pl, &r->pair);
    matmul_bench_free(&m);
    if (status != 0)
        return -1;
    r->ran = true;

    char request[LINE_MAX_LEN], name[16];
    snprintf(name, sizeof name, "%d", n);
    snprintf(request, sizeof request, "matmul %d %g %d %d %g", n, pl->budget_s, pl->min_reps,
             pl->warmup_reps, pl->warmup_s);
    static const char *const KINDS[] = { "numpy_ab", "numpy_abt", "numpy_atb" };
    timing peer_times[3] = { NO_TIMING, NO_TIMING, NO_TIMING };
    if (ask_peer)
        peer_ask(p, request, name, KINDS, 3, peer_times);
    r->peer_skipped = !ask_peer && p->alive;
    r->np_ab = peer_times[0];
    r->np_abt = peer_times[1];
    r->np_atb = peer_times[2];
    return 0;
}

/* The median of n timings' medians (those that ran), and all their repetitions. */
static timing median_of_rounds(const timing *t, int n)
{
    double us[64], fastest = NAN;
    int ran = 0, reps = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(t[i].us)) {
            us[ran++] = t[i].us;
            reps += t[i].reps;
            fastest = isnan(fastest) || t[i].fastest_us < fastest ? t[i].fastest_us : fastest;
        }
    if (ran == 0)
        return NO_TIMING;
    return (timing){ median_of(us, ran), reps, fastest };
}

/* run_config `rounds` times (each taking its turn with the peer); r gets the medians. With
 * threads > 1 each round also times tapegrad on one thread, for the speed-up. */
static int run_config_rounds(const config *c, const plan *pl, int rounds, int threads, bool ask_peer,
                             peer *p, rnn_result *r)
{
    timing ours[64], seed[64], nn_rnn[64], one_thread[64];
    double reserved, round_trip[64];
    for (int i = 0; i < rounds; i++) {
        if (run_config(c, pl, ask_peer, p, r) != 0)
            return -1;
        ours[i] = r->ours, seed[i] = r->seed, nn_rnn[i] = r->nn_rnn, one_thread[i] = NO_TIMING;
        if (threads > 1) {
            tg_set_threads(1);
            int status = time_ours(c, pl, &one_thread[i], &reserved);
            tg_set_threads(threads);
            if (status != 0)
                return -1;
            round_trip[i] = core_round_trip_ns(ROUND_TRIPS);
        }
    }
    r->round_trip_ns = threads > 1 ? median_of(round_trip, rounds) : NAN;
    r->ours = median_of_rounds(ours, rounds);
    r->seed = median_of_rounds(seed, rounds);
    r->nn_rnn = median_of_rounds(nn_rnn, rounds);
    r->one_thread = median_of_rounds(one_thread, rounds);
    return 0;
}

/* run_matmul `rounds` times; r gets the medians. */
static int run_matmul_rounds(int n, const plan *pl, int rounds, bool ask_peer, peer *p, matmul_result *r)
{
    timing t[5][64];
    for (int i = 0; i < rounds; i++) {
        if (run_matmul(n, pl, ask_peer, p, r) != 0)
            return -1;
        t[0][i] = r->ab, t[1][i] = r->pair, t[2][i] = r->np_ab, t[3][i] = r->np_abt, t[4][i] = r->np_atb;
    }
    r->ab = median_of_rounds(t[0], rounds);
    r->pair = median_of_rounds(t[1], rounds);
    r->np_ab = median_of_rounds(t[2], rounds);
    r->np_abt = median_of_rounds(t[3], rounds);
    r->np_atb = median_of_rounds(t[4], rounds);
    return 0;
}

/* Whether a ratio reaches its goal, in words. */
static const char *verdict(double ratio, double goal, bool peer_skipped)
{
    if (peer_skipped)
        return "(peer skipped: --quick)";
    if (isnan(ratio))
        return "(no peer)";
    return ratio >= goal ? "met" : "NOT MET";
}

/* ---- what the goals ask ------------------------------------------------------------------------ */

/* For each config whose goal was measured: the step time the goal asks for (nn.RNN's time
 * over the goal), as GFLOP/s of the flops the step cannot skip and as a share of the core's
 * peak, next to ours at the median and at the fastest step. */
static void print_goal_needs(const rnn_result *results, double peak)
{
    bool any = false;
    for (int i = 0; i < N_CONFIGS; i++)
        any = any || (results[i].ran && !isnan(results[i].nn_rnn.us));
    if (!any)
        return;
    printf("\nWhat each goal asks of a whole step (nn.RNN's time / the goal), in GFLOP/s of the products\n"
           "a step cannot skip (forward, weight gradients, d(h_t-1) for t > 1), against this core's FMA\n"
           "peak, measured now with 12 independent %d-float (%s) FMA chains on one thread: ",
           fma_loop_floats(), fma_loop_isa());
    print_number(0, "%.1f", peak);
    printf(" GFLOP/s\n");
    printf("(ours: at the median step, and at the fastest step of all rounds, which this noisy host\n"
           "reaches in its quiet moments)\n");
    printf("%-3s | %12s %9s %8s | %9s %8s | %12s %9s %8s\n", "cfg", "goal step us", "GFLOP/s",
           "of peak", "ours", "of peak", "fastest us", "GFLOP/s", "of peak");
    for (int i = 0; i < N_CONFIGS; i++) {
        const rnn_result *r = &results[i];
        if (!r->ran || isnan(r->nn_rnn.us) || config_goal(&CONFIGS[i]) <= 0)
            continue;
        double goal_us = r->nn_rnn.us / config_goal(&CONFIGS[i]), flops = step_needed_flops(&CONFIGS[i]);
        double need = flops / (goal_us * 1e3), ours = flops / (r->ours.us * 1e3);
        double fastest = flops / (r->ours.fastest_us * 1e3);
        printf("%-3s | ", CONFIGS[i].name);
        print_number(12, "%.1f", goal_us);
        print_number(10, "%.3g", need);
        print_number(8, "%.0f%%", 100.0 * need / peak);
        printf(" | ");
        print_number(9, "%.3g", ours);
        print_number(8, "%.0f%%", 100.0 * ours / peak);
        printf(" | ");
        print_number(12, "%.1f", r->ours.fastest_us);
        print_number(10, "%.3g", fastest);
        print_number(8, "%.0f%%", 100.0 * fastest / peak);
        printf("\n");
    }
}

static void print_rnn_table(const rnn_result *results)
{
    printf("\nOne training step (median us; ratio = PyTorch's time / ours, > 1: tapegrad is faster; the\n"
           "goals are those for an %s host)\n", host_kind_name(this_host_kind()));
    printf("%-3s %4s %5s %3s %3s | %12s %8s %6s | %12s %12s | %8s %9s  %s\n", "cfg", "I", "H", "B",
           "T", "tapegrad us", "GFLOP/s", "n", "seed loop us", "nn.RNN us", "vs seed", "vs nn.RNN",
           "goal vs nn.RNN");
    for (int i = 0; i < N_CONFIGS; i++) {
        const rnn_result *r = &results[i];
        const config *c = &CONFIGS[i];
        if (!r->ran)
            continue;
        double vs_seed = r->seed.us / r->ours.us, vs_rnn = r->nn_rnn.us / r->ours.us;
        printf("%-3s %4d %5d %3d %3d | ", c->name, c->input, c->hidden, c->batch, c->steps);
        print_number(12, "%.1f", r->ours.us);
        print_number(9, "%.3g", step_flops(c) / (r->ours.us * 1e3));
        printf(" %6d | ", r->ours.reps);
        print_number(12, "%.1f", r->seed.us);
        print_number(13, "%.1f", r->nn_rnn.us);
        printf(" | ");
        print_number(7, "%.2fx", vs_seed);
        print_number(10, "%.2fx", vs_rnn);
        if (config_goal(c) > 0)
            printf("  >=%5.4gx %s\n", config_goal(c), verdict(vs_rnn, config_goal(c), r->peer_skipped));
        else
            printf("  none on an %s host: within 1.1x of make bench-floor\n", host_kind_name(this_host_kind()));
    }
}

static void print_thread_table(const rnn_result *results, int threads)
{
    printf("\nThreads: the same step on %d threads against 1 (tapegrad alone, the same rounds)\n", threads);
    char label[32];
    snprintf(label, sizeof label, "%d threads us", threads);
    printf("%-3s | %12s %12s | %8s | %13s  %s\n", "cfg", "1 thread us", label, "speed-up",
           "round trip ns", "goal");
    for (int i = 0; i < N_CONFIGS; i++) {
        const rnn_result *r = &results[i];
        if (!r->ran)
            continue;
        double speedup = r->one_thread.us / r->ours.us;
        printf("%-3s | ", CONFIGS[i].name);
        print_number(12, "%.1f", r->one_thread.us);
        print_number(13, "%.1f", r->ours.us);
        printf(" | ");
        print_number(7, "%.2fx", speedup);
        printf(" | ");
        print_number(13, "%.0f", r->round_trip_ns);
        if (CONFIGS[i].thread_goal > 0 && threads == 2)
            printf("  >= %.2gx on 2 threads %s", CONFIGS[i].thread_goal, speedup >= CONFIGS[i].thread_goal ? "met" : "NOT MET");
        printf("\n");
    }
    printf("(round trip: a cache line handed from one thread to another and back, the median of the\n"
           "rounds; 70 to 140 ns on the hosts this was measured on when the two cores share a\n"
           "last-level cache, several hundred when they do not, and then each thread's fetches of what\n"
           "the other wrote cost more: L's speed-up was about 1.55x near and 1.3x far. A virtual\n"
           "machine's cores can move between the two over minutes; docs/performance.md)\n");
}

/* The 1024 x 1024 product's goal: its GFLOP/s at least matmul_goal_percent() of the peak. */
static void print_matmul_goal(double ours_us, double peak)
{
    double flops = 2.0 * MATMUL_GOAL_N * (double)MATMUL_GOAL_N * MATMUL_GOAL_N;
    double share = 100.0 * flops / (ours_us * 1e3) / peak;
    if (matmul_goal_percent() <= 0 || isnan(peak)) {
        printf("  (no goal: no FMA peak on this host)");
        return;
    }
    printf("  %.0f%% of the FMA peak, goal >= %.0f%% on an %s host: %s", share, matmul_goal_percent(),
           host_kind_name(this_host_kind()), share >= matmul_goal_percent() ? "met" : "NOT MET");
}

/* peak: this core's FMA peak (GFLOP/s), or NAN when the products ran on several threads. */
static void print_matmul_table(const matmul_result *results, double peak)
{
    printf("\nMatrix products, n x n float32 (median us; GFLOP/s at 2 n^3 flops per product)\n");
    printf("%-34s %5s | %11s %8s | %11s %8s | %9s\n", "product", "n", "tapegrad us", "GFLOP/s",
           "numpy us", "GFLOP/s", "% of numpy");
    for (int i = 0; i < N_MATMUL; i++) {
        const matmul_result *r = &results[i];
        int n = MATMUL_SIZES[i];
        if (!r->ran)
            continue;
        double flops = 2.0 * n * (double)n * n;
        double np_pair = r->np_abt.us + r->np_atb.us;
        struct {
            const char *label;
            double ours, theirs, products;
        } rows[] = {
            { "A*B (tg_matmul)", r->ab.us, r->np_ab.us, 1.0 },
            { "A*B^T + A^T*B (one tg_backward)", r->pair.us, np_pair, 2.0 },
            { "  numpy A@B.T alone", NAN, r->np_abt.us, 1.0 },
            { "  numpy A.T@B alone", NAN, r->np_atb.us, 1.0 },
        };
        for (size_t k = 0; k < sizeof rows / sizeof rows[0]; k++) {
            printf("%-34s %5d | ", rows[k].label, n);
            print_number(11, "%.1f", rows[k].ours);
            print_number(9, "%.2f", rows[k].products * flops / (rows[k].ours * 1e3));
            printf(" | ");
            print_number(11, "%.1f", rows[k].theirs);
            print_number(9, "%.2f", rows[k].products * flops / (rows[k].theirs * 1e3));
            printf(" | ");
            print_number(9, "%.0f%%", 100.0 * rows[k].theirs / rows[k].ours);
            if (k == 0 && n == MATMUL_GOAL_N && !isnan(peak))
                print_matmul_goal(rows[k].ours, peak);
            printf("\n");
        }
    }
}

static void print_memory(const rnn_result *results)
{
    int last = -1;
    for (int i = 0; i < N_CONFIGS; i++)
        if (results[i].ran)
            last = i;
    if (last < 0)
        return;
    printf("\nMemory of one step (MiB; logical = parameters, tape tensors and their grads (the constants have\n"
           "none), from the sizes; actual = tg_tape_reserved_bytes + parameters with grads)\n");
    printf("%-3s | %10s %10s %7s\n", "cfg", "logical", "actual", "ratio");
    for (int i = 0; i < N_CONFIGS; i++) {
        const rnn_result *r = &results[i];
        if (r->ran)
            printf("%-3s | %10.2f %10.2f %6.2fx\n", CONFIGS[i].name, r->logical / 1048576.0,
                   r->actual / 1048576.0, r->actual / r->logical);
    }
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) == 0) {
        double rss = (double)usage.ru_maxrss * 1024.0;        /* Linux: ru_maxrss is in KiB */
        printf("process peak RSS after the configs: %.2f MiB = %.2fx the logical bytes of %s "
               "(includes the data arrays, the program and libc)\n",
               rss / 1048576.0, rss / results[last].logical, CONFIGS[last].name);
    }
}

/* Pins this process to the CPU it runs on now, and so the peer it starts later (a child keeps
 * its parent's mask): with one thread a side, the two are then timed on the same core, where
 * they would otherwise land on whichever the system picks (a virtual machine's two cores have
 * differed in speed by a fifth for minutes: docs/performance.md, Where the two threads run).
 * Returns that CPU, or -1 where it cannot. */
static int pin_to_this_cpu(void)
{
#ifdef __linux__
    int cpu = sched_getcpu();
    cpu_set_t one;
    CPU_ZERO(&one);
    if (cpu >= 0) {
        CPU_SET(cpu, &one);
        if (sched_setaffinity(0, sizeof one, &one) == 0)
            return cpu;
    }
#endif
    return -1;
}

int main(int argc, char **argv)
{
    options opt = parse_args(argc, argv);
    const plan *pl = opt.quick ? &QUICK_PLAN : &FULL_PLAN;
    int rounds = opt.rounds ? opt.rounds : opt.quick ? 1 : DEFAULT_ROUNDS;
    signal(SIGPIPE, SIG_IGN);          /* a peer that dies must not take us with it */

    printf("tapegrad bench: one training step of the vanilla RNN cell (tg_rnn_cell_forward over T steps\n"
           "from h_0 = 0, loss = mean over t of tg_mse, tg_zero_grad, tg_backward, tg_sgd_step), and matmul\n");
    print_machine();
    int threads = tg_set_threads(opt.threads);
    printf("timing: %s; warm-up %d reps and %.2f s, then until %.2f s and %d reps, the median; rounds: %d,\n"
           "        the two sides taking turns, the median of the rounds; flops per step 6 T B H (H + I);\n"
           "        tapegrad threads: %d (tg_set_threads), the peer's: %d\n",
           opt.quick ? "--quick" : "full", pl->warmup_reps, pl->warmup_s, pl->budget_s, pl->min_reps,
           rounds, threads, opt.threads);
    if (opt.threads == 1) {
        int cpu = pin_to_this_cpu();
        if (cpu >= 0)
            printf("cpu: tapegrad and the peer both pinned to CPU %d (the one bench started on), so that\n"
                   "     the two sides are timed on the same core\n", cpu);
        else
            printf("cpu: not pinned (no sched_setaffinity here): each side runs where the system puts it\n");
    }

    peer p = { .pid = -1 };
    if (opt.peer >= 0) {
        peer_start(&p, opt.peer_script, opt.threads);
        printf("peer: %s %s --serve --threads %d, one request at a time, taking turns with tapegrad; started with\n"
               "      OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from its environment\n",
               PEER_PYTHON, opt.peer_script, opt.threads);
        print_env_var("OPENBLAS_CORETYPE");
        print_env_var("OPENBLAS_L2_SIZE");
        for (int i = 0; i < p.n_info; i++)
            printf("  %s\n", p.info[i]);
        if (!p.alive) {
            printf("note: no peer: %s; tapegrad's numbers only\n", p.note);
            if (opt.peer > 0) {
                peer_stop(&p);
                tg_set_threads(1);
                fprintf(stderr, "bench: --peer given but the peer cannot run: %s\n", p.note);
                return 1;
            }
        }
    } else {
        printf("peer: not started (--no-peer)\n");
    }
    printf("isa: tapegrad's kernels: %s (the widest path this CPU has, chosen at run time); the FMA\n"
           "     loop: %d-float (%s); the peer's: %s\n", tg_kernel_path_name(tg_kernel_path()),
           fma_loop_floats(), fma_loop_isa(), p.alive ? peer_isa(&p) : "(no peer)");

    int status = 0;
    rnn_result rnn[N_CONFIGS] = { 0 };
    for (int i = 0; i < N_CONFIGS && status == 0; i++) {
        bool ask = !opt.quick || opt.configs_named || step_flops(&CONFIGS[i]) <= QUICK_PEER_MAX_FLOPS;
        if (opt.run_config[i] && run_config_rounds(&CONFIGS[i], pl, rounds, threads, ask, &p, &rnn[i]) != 0)
            status = 1;
    }
    double peak = threads == 1 ? fma_peak_gflops() : NAN; /* the goals are one core's */
    if (status == 0) {
        print_rnn_table(rnn);
        if (threads == 1)
            print_goal_needs(rnn, peak);
        if (threads > 1)
            print_thread_table(rnn, threads);
        print_memory(rnn);
    }

    matmul_result mm[N_MATMUL] = { 0 };
    for (int i = 0; i < N_MATMUL && status == 0; i++) {
        double n = MATMUL_SIZES[i];
        bool ask = !opt.quick || opt.matmul_named || 2.0 * n * n * n <= QUICK_PEER_MAX_FLOPS;
        if (opt.run_matmul[i] && run_matmul_rounds(MATMUL_SIZES[i], pl, rounds, ask, &p, &mm[i]) != 0)
            status = 1;
    }
    if (status == 0)
        print_matmul_table(mm, peak);
    if (status == 0 && peer_saw_reference_blas(&p))
        printf("\nnote: the peer's numpy and torch run the netlib reference BLAS (see the peer's lines at the\n"
               "top), not OpenBLAS: numpy's GFLOP/s is no ceiling for our kernels, and PyTorch's large\n"
               "products (L, XL) are slower than they would be with an optimised BLAS\n");

    printf("\nload average at the end: %.2f\n", load_average());
    bool had_peer = p.alive;
    int peer_status = opt.peer >= 0 ? peer_stop(&p) : 0;
    if (had_peer && peer_status != 0)
        printf("note: the peer exited with status %d\n", peer_status);
    if (opt.peer > 0 && !had_peer)
        status = 1;
    tg_set_threads(1);                 /* stops the library's workers */
    return status;
}
