/* charlm.c: a character-level language model. A stack of recurrent layers reads a text one
 * byte at a time, learns to predict the next byte, and then writes new text one sampled byte
 * at a time.
 *
 * The model, for B streams of text side by side as columns (V: the number of distinct bytes
 * in the text, H: the hidden size, L: the layers; an LSTM carries c beside h):
 *
 *     x_t      = one-hot of the byte at t                                   V x B
 *     h_t      = module(x_t, the states at t - 1)  (tg_rnn, tg_lstm or tg_gru,  H x B
 *                L layers: layer l > 0 reads layer l-1's h_t)
 *     logits_t = W_y h_t + b_y   (W_y: V x H, b_y: V: torch's nn.Linear)      V x B
 *     loss     = mean over t of cross_entropy(logits_t, the byte at t + 1)
 *
 * A model that knows nothing gives every byte probability 1/V, a loss of ln V nats per byte
 * (ln V / ln 2 bits). Truncated BPTT: the text is far too long for one tape, so each iteration
 * records a chunk of T steps, backpropagates through those alone and updates the weights. The
 * states are not reset between chunks: every layer's last h (and c) of a chunk becomes the
 * first state of the next, copied into a plain tg_constant with no history. So the forward
 * pass still sees context from earlier chunks while gradients stop at the chunk's start. The
 * B streams start at evenly spaced points of the training text and each reads on where its
 * last chunk ended (wrapping around at the end).
 *
 * Validation: the last 10% of the text (or --val FILE) is held out, never trained on. Each
 * report gives the training loss (the mean over the chunks since the last report) and the loss
 * on the held-out text (its first 64 KiB), read from zero states on a tape that records no
 * gradients (tg_tape_set_no_grad); when this validation loss rises at two reports in a row
 * while the training loss falls, the model is learning the training text by heart, and a
 * warning says so (once for each such run of rises).
 *
 * To generate, the model reads a byte (a forward on the no-grad tape), turns its logits into
 * p_i = exp(logit_i / temperature) / sum_j exp(logit_j / temperature), draws the next byte from
 * p and reads that: temperature 1 samples the model as it is, below 1 favours its likeliest
 * guesses (safer, more repetitive), above 1 flattens p (more surprise, more typos).
 *
 * A checkpoint is one safetensors file (docs/checkpoints.md): the module under torch's names
 * (weight_ih_l0, ...), readout.weight and readout.bias as nn.Linear's, the optimizer's state
 * (optimizer.<param>.exp_avg, ...), the streams' states (stream.h_l<l>, stream.c_l<l>) and, in
 * its metadata, the cell, sizes, vocabulary, iteration count, optimizer settings and stream
 * positions. So --resume FILE continues the run exactly: 2N iterations, or N then a resume
 * for N more, print the same losses bit for bit.
 *
 * This file trains, scores the held-out text and samples; four headers hold the rest:
 * charlm_model.h the model and its pass over a chunk, charlm_data.h the text and its
 * vocabulary, charlm_options.h the command line, charlm_run.h the trainer's state, the run's
 * memory estimate and its checkpoint. */
#define _POSIX_C_SOURCE 200809L   /* glob() for the default text (charlm_data.h), isatty() for
                                     the progress bar, mkstemp() to try --save's directory
                                     (charlm_run.h) */

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "charlm_data.h"
#include "charlm_model.h"
#include "charlm_options.h"
#include "charlm_run.h"
#include "cli.h"
#include "tapegrad.h"

enum {
    TICKS = 10,                            /* progress lines (off a terminal) and checkpoints */
    BAR_WIDTH = 24,
};
#define VAL_SCORED 65536         /* bytes of the validation text scored at each report, at most */
#define SMOOTHING 0.95           /* the smoothed loss weighs the loss k iterations back by
                                    SMOOTHING^k (a bias-corrected moving average, as in Adam) */
#define REDRAW_SECONDS 0.1       /* a terminal's progress bar is redrawn at most this often */

/* ---- training ---------------------------------------------------------------------------- */

/* The message for a training run that diverged: what is not finite, and when. False. */
static bool diverged(const char *what, long iter)
{
    complain("%s is not finite at iteration %ld; try a smaller --lr", what, iter);
    return false;
}

/* One iteration: forward over a chunk, backward, clip, update, and carry the states on. Sets
 * *loss_out. False (and a message) on failure. */
static bool train_step(trainer *w, model *m, const text *t, const options *opt, float *loss_out)
{
    long iter = w->iteration + 1;
    pass *p = &w->chunk;
    for (int s = 0; s < opt->steps; s++)
        for (int b = 0; b < opt->batch; b++) {
            size_t here = (w->pos[b] + (size_t)s) % t->n;
            p->classes[s * opt->batch + b] = t->data[here];
            p->targets[s * opt->batch + b] = t->data[(here + 1) % t->n];
        }
    tg_tape_reset(w->tape);                   /* forget the last chunk, keep the memory */
    tg_zero_grad(m->params, m->n_params, NULL);
    tg_tensor *loss = pass_loss(w->tape, m, p, opt->steps);
    if (loss && !isfinite(loss->data[0]))
        return diverged("the loss", iter);
    if (tg_backward(w->tape, loss) != 0) {
        complain("%s", tg_tape_error(w->tape));
        return false;
    }
    if (opt->clip > 0.0f && isnan(tg_clip_grad_norm(m->params, m->n_params, opt->clip)))
        return diverged("a gradient", iter);
    tg_error err;
    if (tg_optimizer_step(w->optimizer, &err) != 0) {
        complain("iteration %ld: %s; try a smaller --lr or a --clip", iter, err.message);
        return false;
    }
    pass_carry(p, m);
    for (int b = 0; b < opt->batch; b++)
        w->pos[b] = (w->pos[b] + (size_t)opt->steps) % t->n;
    w->iteration = iter;
    *loss_out = loss->data[0];
    return true;
}

/* The loss on the held-out text: its bytes split among the streams of e's pass, each read from
 * zero states in chunks of up to T steps on a tape that records no gradients. */
typedef struct evaluator {
    tg_tape *tape;                     /* no-grad */
    pass chunk;
} evaluator;

static void evaluator_free(evaluator *e)
{
    tg_tape_free(e->tape);
    pass_free(&e->chunk);
}

/* The bytes of val that each report scores: its first VAL_SCORED at most. */
static size_t scored(const text *val) { return val->n < VAL_SCORED ? val->n : VAL_SCORED; }

/* A pass of at most --batch streams over val (each predicting one byte at least). False when
 * out of memory. */
static bool evaluator_init(evaluator *e, const model *m, const options *opt, const text *val)
{
    size_t streams = scored(val) - 1 < (size_t)opt->batch ? scored(val) - 1 : (size_t)opt->batch;
    e->tape = tg_tape_new();
    tg_tape_set_no_grad(e->tape, 1);
    return pass_init(&e->chunk, m, opt->steps, (int)streams) && e->tape;
}

/* The mean cross-entropy, in nats per byte, of every byte of val's first VAL_SCORED that the
 * streams predict. False (and a message) on failure. */
static bool held_out_loss(evaluator *e, const model *m, const text *val, double *loss)
{
    pass *p = &e->chunk;
    const size_t B = (size_t)p->batch, span = (scored(val) - 1) / B;   /* each stream predicts */
    memset(p->h, 0, state_bytes(m, p));
    memset(p->c, 0, state_bytes(m, p));
    double sum = 0.0;
    for (size_t start = 0; start < span; start += (size_t)p->steps) {
        int steps = span - start < (size_t)p->steps ? (int)(span - start) : p->steps;
        for (size_t s = 0; s < (size_t)steps; s++)
            for (size_t b = 0; b < B; b++) {
                size_t at = b * span + start + s;
                p->classes[s * B + b] = val->data[at];
                p->targets[s * B + b] = val->data[at + 1];
            }
        tg_tape_reset(e->tape);
        tg_tensor *chunk = pass_loss(e->tape, m, p, steps);
        if (!chunk) {
            complain("%s", tg_tape_error(e->tape));
            return false;
        }
        sum += (double)chunk->data[0] * steps;
        pass_carry(p, m);
    }
    *loss = sum / (double)span;
    return true;
}

/* ---- progress and the training loop ------------------------------------------------------ */

/* Progress on stderr: a bar redrawn in place on a terminal, else a line every tick. */
typedef struct progress {
    bool terminal;                     /* stderr is a terminal */
    bool shared;                       /* ... and so is stdout: clear the bar for a log line */
    double start, last_drawn;
    long chars_per_iter;
} progress;

static void progress_clear(progress *p)
{
    if (p->shared && bar_drawn > 0) {
        fprintf(stderr, "\r%*s\r", bar_drawn, "");
        bar_drawn = 0;
    }
}

static void progress_show(progress *p, int iter, int iters, float smoothed_loss)
{
    double elapsed = now() - p->start;
    double rate = elapsed > 0.0 ? (double)iter * (double)p->chars_per_iter / elapsed : 0.0;
    int eta = (int)(elapsed * (iters - iter) / iter + 0.5);
    int filled = (int)((long long)BAR_WIDTH * iter / iters);
    char bar[BAR_WIDTH + 1];
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[BAR_WIDTH] = '\0';
    char line[160];
    int n = snprintf(line, sizeof line, "[%s] %3d%%  iter %d/%d  loss %.4g  %.0f chars/s  "
                     "ETA %d:%02d", bar, (int)(100LL * iter / iters), iter, iters,
                     smoothed_loss, rate, eta / 60, eta % 60);
    if (p->terminal) {
        fprintf(stderr, "\r%s%*s", line, bar_drawn > n ? bar_drawn - n : 0, "");
        bar_drawn = n;
        p->last_drawn = now();
    } else
        complain("%s", line);
}

/* The report line of an iteration: the training loss (the mean since the last report) and the
 * validation loss, each in nats per byte (9 digits: a float's exact value) and bits per char. */
static void report(long iter, double train_loss, const double *held_out)
{
    printf("iter %7ld  train %.9g nats/byte (%.4f bits/char)", iter, train_loss,
           train_loss / log(2.0));
    if (held_out)
        printf("  validation %.9g nats/byte (%.4f bits/char)", *held_out, *held_out / log(2.0));
    putchar('\n');
}

/* The losses of the last two reports, and for how many reports in a row the held-out loss
 * has risen while the training loss fell, to tell when the held-out loss turns up. */
typedef struct trend {
    bool any;
    int rises;
    double train, held_out;               /* the last report's */
    double train_before, held_out_before; /* the report's before it */
} trend;

/* Warns once per run of rises, at the second report in a row (one rise alone may be noise),
 * with the losses from the report before the first rise. */
static void warn_if_memorising(trend *last, double train_loss, double held_out)
{
    bool rose = last->any && held_out > last->held_out && train_loss < last->train;
    int rises = rose ? last->rises + 1 : 0;
    if (rises == 2)
        printf("warning: the validation loss rose at 2 reports in a row (%.4f -> %.4f) while the "
               "training loss fell (%.4f -> %.4f): the model is learning the training text by "
               "heart\n", last->held_out_before, held_out, last->train_before, train_loss);
    *last = (trend){ true, rises, train_loss, held_out, last->train, last->held_out };
}

/* Trains for opt->iters iterations: LOG_LINES report lines on stdout (with the held-out loss
 * when e is not NULL), progress on stderr, a checkpoint (with --save) every tick and at the
 * end. False on failure. */
static bool train(trainer *w, evaluator *e, model *m, const text *t, const text *val,
                  const vocab *v, const options *opt)
{
    bool terminal = isatty(fileno(stderr));
    progress p = { .terminal = terminal, .shared = terminal && isatty(fileno(stdout)),
                   .start = now(), .chars_per_iter = (long)opt->steps * opt->batch };
    int log_every = opt->iters > LOG_LINES ? opt->iters / LOG_LINES : 1;
    int tick_every = opt->iters > TICKS ? opt->iters / TICKS : 1;
    double window = 0.0;                      /* the sum of the losses since the last report */
    double average = 0.0, weight = 0.0;       /* the moving average and its total weight */
    trend last = { 0 };
    for (int iter = 1; iter <= opt->iters; iter++) {
        float loss;
        if (!train_step(w, m, t, opt, &loss))
            return false;
        w->losses[iter - 1] = loss;
        average = SMOOTHING * average + (1.0 - SMOOTHING) * loss;
        weight = SMOOTHING * weight + (1.0 - SMOOTHING);
        w->smoothed[iter - 1] = (float)(average / weight);
        window += loss;
        bool end = iter == opt->iters;
        if (iter % log_every == 0 || end) {
            int n = iter % log_every == 0 ? log_every : iter % log_every;
            double held_out = 0.0;
            if (e && !held_out_loss(e, m, val, &held_out))
                return false;
            if (e && w->n_reports < MAX_REPORTS) {
                w->val_iter[w->n_reports] = (float)w->iteration;
                w->val_loss[w->n_reports++] = (float)held_out;
            }
            progress_clear(&p);
            report(w->iteration, window / n, e ? &held_out : NULL);
            if (e)
                warn_if_memorising(&last, window / n, held_out);
            fflush(stdout);
            window = 0.0;
        }
        bool tick = iter % tick_every == 0 || end;
        if (tick && opt->save && !save_checkpoint(m, v, w, opt, t->n, opt->save))
            return false;
        if (tick || (p.terminal && now() - p.last_drawn >= REDRAW_SECONDS))
            progress_show(&p, iter, opt->iters, w->smoothed[iter - 1]);
    }
    if (bar_drawn > 0)
        fputc('\n', stderr);
    bar_drawn = 0;
    double seconds = fmax(now() - p.start, 1e-9);
    char held[32];
    format_bytes(held, (double)tg_tape_reserved_bytes(w->tape));
    printf("trained %d iterations (%ld chars) in %.1f s: %.0f chars/s; the tape held %s\n",
           opt->iters, (long)opt->iters * p.chars_per_iter, seconds,
           (double)opt->iters * (double)p.chars_per_iter / seconds, held);
    return true;
}

/* The loss curve as an SVG chart: every chunk's loss, the smoothed loss, the validation loss
 * of each report and ln V. False (and a message) on failure. */
static bool write_plot(const trainer *w, const options *opt, int vocab_size)
{
    int n = opt->iters;
    float *x = malloc((size_t)n * sizeof *x);
    if (!x) {
        complain("out of memory");
        return false;
    }
    for (int i = 0; i < n; i++)
        x[i] = (float)(w->iteration - n + i + 1);
    float ends[2] = { x[0], x[n - 1] };
    float uniform[2] = { logf((float)vocab_size), logf((float)vocab_size) };
    tg_series series[] = {
        { "loss of each chunk", x, w->losses, n, TG_SERIES_LINE },
        { "smoothed", x, w->smoothed, n, TG_SERIES_LINE },
        { "ln V: a uniform guess", ends, uniform, 2, TG_SERIES_REFERENCE },
        { "validation", w->val_iter, w->val_loss, w->n_reports, TG_SERIES_MARKED },
    };
    char title[160];
    snprintf(title, sizeof title, "charlm: %s, %d x %d hidden, %s, chunks of %d steps x %d streams",
             CELLS[opt->cell], opt->layers, opt->hidden, OPTIMIZERS[opt->optimizer], opt->steps,
             opt->batch);
    tg_chart chart = { title, "iteration", "cross-entropy, nats per byte (log scale)", 1,
                       series, w->n_reports > 0 ? 4 : 3 };
    tg_error err;
    int status = tg_chart_write_svg(&chart, opt->plot, &err);
    if (status != 0)
        complain("%s", err.message);
    free(x);
    return status == 0;
}

/* ---- sampling ---------------------------------------------------------------------------- */

/* Feeds class c to the model (batch 1) on a no-grad tape, carrying the states in p. Returns
 * the logits of the next byte (V x 1, valid until the next call), or NULL (and a message). */
static tg_tensor *read_byte(tg_tape *tape, const model *m, pass *p, int c)
{
    tg_tape_reset(tape);
    p->classes[0] = c;
    tg_tensor *logits = pass_forward(tape, m, p, 1) == 0 ? readout(tape, m, p->outputs[0]) : NULL;
    if (!logits) {
        complain("%s", tg_tape_error(tape));
        return NULL;
    }
    pass_carry(p, m);
    return logits;
}

/* A class drawn from softmax(logits / temperature); p is V doubles of scratch. */
static int draw(const tg_tensor *logits, float temperature, double *p, tg_rng *rng)
{
    int n = logits->rows;
    float top = logits->data[0];
    for (int i = 1; i < n; i++)
        top = fmaxf(top, logits->data[i]);
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        p[i] = exp((double)(logits->data[i] - top) / temperature);   /* at most 1: no overflow */
        sum += p[i];
    }
    double u = tg_rng_uniform(rng) * sum;
    for (int i = 0; i < n - 1; i++) {
        u -= p[i];
        if (u < 0.0)
            return i;
    }
    return n - 1;
}

/* Prints --prime and then opt->sample bytes drawn from the model, and a newline. The model
 * starts from zero states and reads the prime, or a newline when there is none. False (and a
 * message) on failure. */
static bool sample(const model *m, const vocab *v, const options *opt, tg_rng *rng)
{
    tg_tape *tape = tg_tape_new();
    tg_tape_set_no_grad(tape, 1);          /* inference: nothing recorded for a backward */
    pass p;
    bool ok = pass_init(&p, m, 1, 1);
    double *probs = malloc((size_t)v->size * sizeof *probs);
    if (!ok || !tape || !probs) {
        complain("out of memory");
        ok = false;
    }
    tg_tensor *logits = NULL;
    for (const char *q = opt->prime; ok && q && *q; q++) {
        putchar(*q);
        ok = (logits = read_byte(tape, m, &p, v->class_of[(unsigned char)*q])) != NULL;
    }
    if (ok && !opt->prime) {
        int start = v->class_of['\n'] >= 0 ? v->class_of['\n'] : 0;   /* else the first byte */
        ok = (logits = read_byte(tape, m, &p, start)) != NULL;
    }
    for (int i = 0; ok && i < opt->sample; i++) {
        int c = draw(logits, opt->temperature, probs, rng);
        putchar(v->byte[c]);
        if (i + 1 < opt->sample)
            ok = (logits = read_byte(tape, m, &p, c)) != NULL;
    }
    if (ok)
        putchar('\n');
    free(probs);
    pass_free(&p);
    tg_tape_free(tape);
    return ok;
}

/* ---- main -------------------------------------------------------------------------------- */

/* The texts (read and encoded when there is training to do, or a vocabulary to find) and the
 * vocabulary (from the checkpoint when resumed, else from the texts); without --val the last
 * VAL_SHARE of the text is held out. Returns 0, 1 (a runtime failure) or 2 (a --prime outside
 * the vocabulary). */
static int prepare_data(const options *opt, bool resumed, vocab *v, text *t, text *val)
{
    bool need_text = opt->iters > 0 || !resumed;
    if (need_text && (!read_text(t, opt->text) || (opt->val && !read_text(val, opt->val))))
        return 1;
    if (!resumed) {
        vocab_of_texts(v, t, val);
        if (v->size < 2) {
            complain("%s holds one distinct byte only: there is nothing to predict", t->name);
            return 1;
        }
    }
    const char *source = resumed ? opt->resume : t->name;
    if (need_text && (!encode(t, v, opt->unknown, source)
                      || (opt->val && !encode(val, v, opt->unknown, source))
                      || (!opt->val && !hold_out(t, val))))
        return 1;
    if (need_text && t->n < 2) {
        complain("%s has %zu bytes to train on; it needs at least 2", t->name, t->n);
        return 1;
    }
    int missing = missing_byte(opt->prime, v);
    if (missing >= 0) {
        char byte[16];
        describe_byte(byte, missing);
        complain("--prime has byte %s, which is not in the vocabulary (see charlm --help)", byte);
        return 2;
    }
    if (need_text)
        printf("text: %s, %zu bytes to train on, %zu for validation (%s); vocabulary of %d "
               "bytes (a uniform guess scores ln %d = %.2f nats, %.2f bits)\n", t->name, t->n,
               val->n, val->n >= 2 ? val->name : "too few: no validation loss", v->size, v->size,
               log((double)v->size), log2((double)v->size));
    return 0;
}

/* Builds the model, trains it (with the held-out loss when there is held-out text; when md
 * is not NULL, on from the checkpoint's run of `done` iterations) and saves it. Returns 0 or
 * 1. */
static int fit(options *opt, model *m, const vocab *v, const text *t, const text *val,
               const tg_metadata *md, long done)
{
    trainer w = { 0 };
    evaluator e = { 0 };
    memory_estimate need = { 0 };
    bool training = opt->iters > 0, held_out = training && val->n >= 2;
    int status = 0;
    if (training && !memory_fits(m, opt, t->room, &need))
        status = 1;
    if (status == 0 && training && (!trainer_init(&w, m, opt, t->n)
                                    || (held_out && !evaluator_init(&e, m, opt, val)))) {
        complain("out of memory");
        status = 1;
    }
    if (status == 0 && md && !load_model(m, opt->resume))
        status = 1;
    if (status == 0 && md && training && !load_trainer(&w, m, md, opt->resume, opt, t->n))
        status = 1;
    if (status == 0 && md && training)
        w.iteration = done;
    if (status == 0 && training) {
        char total[32], tape[32];
        format_bytes(total, need.total);
        format_bytes(tape, need.tape);
        printf("model: %s, %d layer%s of %d%s%s; %s lr %g, clip %g; %d iterations of %d steps x "
               "%d streams; memory about %s, %s of it the tape\n", CELLS[opt->cell], opt->layers,
               opt->layers > 1 ? "s" : "", opt->hidden, md ? ", resumed from " : "",
               md ? opt->resume : "", OPTIMIZERS[opt->optimizer], w.optimizer->lr, opt->clip,
               opt->iters, opt->steps, opt->batch, total, tape);
        fflush(stdout);
        if (!train(&w, held_out ? &e : NULL, m, t, val, v, opt)
            || (opt->plot && !write_plot(&w, opt, v->size)))
            status = 1;
    } else if (status == 0 && opt->save) {
        if (md)
            complain("note: with --iters 0, --save %s keeps the model and settings of %s but not "
                     "its optimizer state, streams or iteration count: a run resumed from %s "
                     "starts those afresh", opt->save, opt->resume, opt->save);
        if (!save_checkpoint(m, v, NULL, opt, 0, opt->save))
            status = 1;
    }
    trainer_free(&w);
    evaluator_free(&e);
    return status;
}

static int run(options *opt)
{
    vocab v;
    text t = { 0 }, val = { 0 };
    model m = { 0 };
    tg_metadata *md = NULL;
    tg_rng rng = tg_rng_new(opt->seed);
    long done = 0;                            /* iterations of the resumed run */
    int status = read_resume(opt, &md, &done, &v);
    if (status == 0 && opt->iters > 0 && opt->save && !can_save(opt->save))
        status = 1;
    if (status == 0)
        status = prepare_data(opt, md != NULL, &v, &t, &val);
    if (status == 0 && !model_init(&m, opt->cell, v.size, opt->hidden, opt->layers, &rng)) {
        complain("out of memory");
        status = 1;
    }
    if (status == 0)
        status = fit(opt, &m, &v, &t, &val, md, done);
    if (status == 0 && opt->sample > 0) {
        if (opt->iters > 0)
            printf("\nsample (temperature %g):\n", opt->temperature);
        if (!sample(&m, &v, opt, &rng))
            status = 1;
    }
    model_free(&m);
    tg_metadata_free(md);
    free(t.data);
    free(val.data);
    return status;
}

int main(int argc, char **argv)
{
    program = "charlm";
    options opt = parse_args(argc, argv);
    int status = run(&opt);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        complain("cannot write the output: %s", strerror(errno));
        if (status == 0)
            status = 1;
    }
    return status;
}
