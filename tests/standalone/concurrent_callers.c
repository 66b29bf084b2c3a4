/* concurrent_callers.c: several threads train models of their own at once while the worker
 * pool is on (tg_set_threads(4)), and every one must end with the very weights it gets when
 * it trains alone on one thread. Its products are large enough to be handed to the pool. A
 * last round also changes the pool's size while they train. A deadlock shows as a failure:
 * the callers are waited for with a time limit.
 *
 * Usage: concurrent_callers [CALLERS [SECONDS]]   (2 callers and 60 s by default)
 * Exit status 0 when every caller matched its lone run, 1 otherwise. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tapegrad.h"

/* W_h h is 256 x 256 x 32: 2^21 multiply-adds, over the pool's threshold of 2^20. */
enum { INPUT = 16, HIDDEN = 256, BATCH = 32, STEPS = 4, ITERS = 3 };
enum { MAX_CALLERS = 16, POOL_THREADS = 4, ROUNDS = 5 };
#define N_WEIGHTS (HIDDEN * HIDDEN + HIDDEN * INPUT + HIDDEN)

typedef struct caller {
    int id;
    bool ok;                  /* no error from the library */
    float weights[N_WEIGHTS]; /* W_h, W_x and b after training */
} caller;

/* Shared by the callers of one round and the thread that waits for them. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t finished;
    int running;
} round_state = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0 };

static void fill(float *x, int n, tg_rng *rng)
{
    for (int i = 0; i < n; i++)
        x[i] = 2.0f * tg_rng_uniform(rng) - 1.0f;
}

/* One step of training: STEPS steps of the cell from a zero state, the mean squared error of
 * the last state against a target, backward, SGD. */
static bool train_once(tg_tape *tape, tg_rnn_cell *cell, tg_rng *rng)
{
    float xs[INPUT * BATCH], ys[HIDDEN * BATCH];
    tg_tape_reset(tape);
    tg_tensor *h = tg_input(tape, HIDDEN, BATCH, NULL);
    for (int t = 0; t < STEPS; t++) {
        fill(xs, INPUT * BATCH, rng);
        h = tg_rnn_cell_forward(tape, cell, tg_input(tape, INPUT, BATCH, xs), h);
    }
    fill(ys, HIDDEN * BATCH, rng);
    tg_tensor *loss = tg_mse(tape, h, tg_input(tape, HIDDEN, BATCH, ys));
    tg_tensor *params[] = { cell->W_h, cell->W_x, cell->b };
    return tg_zero_grad(params, 3, NULL) == 0 && tg_backward(tape, loss) == 0 &&
           tg_sgd_step(params, 3, 0.5f, NULL) == 0;
}

/* Trains caller c's own model and keeps its weights in c. */
static void train(caller *c)
{
    tg_rnn_cell *cell = tg_rnn_cell_new(INPUT, HIDDEN, 100 + (uint64_t)c->id);
    tg_tape *tape = tg_tape_new();
    tg_rng rng = tg_rng_new(200 + (uint64_t)c->id);
    c->ok = cell && tape;
    for (int i = 0; i < ITERS && c->ok; i++)
        c->ok = train_once(tape, cell, &rng);
    if (c->ok) {
        memcpy(c->weights, cell->W_h->data, sizeof(float) * HIDDEN * HIDDEN);
        memcpy(c->weights + HIDDEN * HIDDEN, cell->W_x->data, sizeof(float) * HIDDEN * INPUT);
        memcpy(c->weights + HIDDEN * (HIDDEN + INPUT), cell->b->data, sizeof(float) * HIDDEN);
    }
    tg_tape_free(tape);
    tg_rnn_cell_free(cell);
}

static void *caller_main(void *arg)
{
    train(arg);
    pthread_mutex_lock(&round_state.lock);
    round_state.running--;
    pthread_cond_signal(&round_state.finished);
    pthread_mutex_unlock(&round_state.lock);
    return NULL;
}

/* Waits until no caller is running or `seconds` have passed; returns how many still run. */
static int wait_for_callers(int seconds)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += seconds;
    pthread_mutex_lock(&round_state.lock);
    int rc = 0;
    while (round_state.running > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&round_state.finished, &round_state.lock, &deadline);
    int left = round_state.running;
    pthread_mutex_unlock(&round_state.lock);
    return left;
}

static atomic_bool resizing; /* the resizer runs while this is true */

/* Sets the pool to 1, 2, 3, 4, 1, ... threads, a millisecond apart, while the callers train. */
static void *resizer_main(void *arg)
{
    (void)arg;
    for (int n = 0; atomic_load(&resizing); n++) {
        tg_set_threads(1 + n % POOL_THREADS);
        nanosleep(&(struct timespec){ 0, 1000 * 1000 }, NULL);
    }
    return NULL;
}

/* Runs n callers at once, with the resizer too when `resize`; false on a deadlock (the
 * threads are left behind: the program exits next) or a mismatch with `alone`. */
static bool run_round(int n, const caller *alone, caller *together, bool resize, int seconds)
{
    pthread_t threads[MAX_CALLERS], resizer;
    round_state.running = n;
    for (int c = 0; c < n; c++) {
        together[c].id = c;
        if (pthread_create(&threads[c], NULL, caller_main, &together[c]) != 0) {
            fprintf(stderr, "concurrent_callers: cannot start caller %d\n", c);
            exit(1);
        }
    }
    atomic_store(&resizing, resize);
    if (resize && pthread_create(&resizer, NULL, resizer_main, NULL) != 0) {
        fprintf(stderr, "concurrent_callers: cannot start the resizer\n");
        exit(1);
    }
    int left = wait_for_callers(seconds);
    if (left > 0) {
        fprintf(stderr, "concurrent_callers: %d of %d callers still running after %d s "
                        "(deadlock)\n", left, n, seconds);
        return false;
    }
    for (int c = 0; c < n; c++)
        pthread_join(threads[c], NULL);
    atomic_store(&resizing, false);
    if (resize)
        pthread_join(resizer, NULL);
    bool ok = true;
    for (int c = 0; c < n; c++) {
        if (!together[c].ok) {
            fprintf(stderr, "concurrent_callers: caller %d failed\n", c);
            ok = false;
        } else if (memcmp(together[c].weights, alone[c].weights, sizeof alone[c].weights) != 0) {
            fprintf(stderr, "concurrent_callers: caller %d's weights differ from its lone run\n", c);
            ok = false;
        }
    }
    return ok;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 2;
    int seconds = argc > 2 ? atoi(argv[2]) : 60;
    if (n < 1 || n > MAX_CALLERS || seconds < 1) {
        fprintf(stderr, "usage: concurrent_callers [CALLERS (1..%d) [SECONDS]]\n", MAX_CALLERS);
        return 2;
    }
    static caller alone[MAX_CALLERS], together[MAX_CALLERS];
    tg_set_threads(1);
    for (int c = 0; c < n; c++) {
        alone[c].id = c;
        train(&alone[c]);
        if (!alone[c].ok) {
            fprintf(stderr, "concurrent_callers: caller %d failed alone\n", c);
            return 1;
        }
    }
    if (tg_set_threads(POOL_THREADS) != POOL_THREADS) {
        fprintf(stderr, "concurrent_callers: cannot start %d threads\n", POOL_THREADS);
        return 1;
    }
    for (int round = 0; round < ROUNDS; round++)
        if (!run_round(n, alone, together, false, seconds))
            return 1;
    if (!run_round(n, alone, together, true, seconds))
        return 1;
    tg_set_threads(1);
    printf("concurrent_callers: %d callers, %d rounds on %d threads and one while resizing: "
           "same weights as alone\n", n, ROUNDS, POOL_THREADS);
    return 0;
}
