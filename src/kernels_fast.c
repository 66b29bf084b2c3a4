/* kernels_fast.c: the kernels the ops call, computing what kernels_ref.c defines, faster.
 * The three matrix products go through one cache-blocked routine: blocks of the operands are
 * copied ("packed") into small contiguous panels, so a transposed operand costs little
 * extra, and a register-tiled micro-kernel multiplies the panels; operands whose rows are
 * short enough (a batch of up to 64 columns) are read where they lie instead. On x86-64 CPUs
 * with AVX-512 the micro-kernel (a 12 x 32 tile) and tanh/sigmoid use 16-float vectors; with
 * AVX2 and FMA (which AVX-512 CPUs have too) the micro-kernel (6 x 16), the transposes and
 * tanh/sigmoid use 8-float ones; the widest is chosen at run time, and everywhere else plain
 * C runs. Tiny products, and thin ones (a few columns, or a short k), skip the packing and
 * use direct loops (plain scalar ones up to 64 multiply-adds). Large products, and long
 * elementwise passes, are split over the thread pool into blocks of the result, with the same
 * bits for any thread count. */
#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "threads.h"

/* Block sizes: a KC x NC block of B (256 KiB) stays in L2 (a block of a B with fewer rows
 * than KC is as many columns wider, up to NC_WIDE, so that it holds as much), an MR x KC
 * panel of A (6 KiB) in L1, and the MR x NR tile of C in registers (MR_512 x NR_512 on the
 * AVX-512 path: 24 of its 32 vector registers). */
enum { MR = 6, NR = 16, MR_512 = 12, NR_512 = 32, KC = 256, NC = 256, NC_WIDE = 4 * NC,
       TINY = 8 * 8 * 8, THIN = 4, SCALAR_MAX = 64 };
/* Products with fewer multiply-adds than this stay on one thread: below it, handing a job to
 * the workers would cost a noticeable share of the product (docs/performance.md, Threads). */
#define PARALLEL_MIN (1L << 20)
/* Results larger than this (L1) get their tiles prefetched before they are added to. */
#define C_PREFETCH_BYTES (32L * 1024)

/* A matrix operand read through strides: element (i, j) is at p[i * row + j * col]. */
typedef struct view { const float *p; long row, col; } view;

static float at(view v, int i, int j) { return v.p[i * v.row + j * v.col]; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAVE_AVX2_KERNEL 1 /* AVX2 and AVX-512 versions, used when the CPU has them */
#endif

/* ---- the path: which instruction set the kernels take -------------------------------------- */

/* Whether this CPU can run path's code. */
static bool host_has(int path)
{
    switch (path) {
    case TG_PATH_C:
        return true;
#ifdef HAVE_AVX2_KERNEL
    case TG_PATH_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case TG_PATH_AVX512:
        return host_has(TG_PATH_AVX2) && __builtin_cpu_supports("avx512f");
#endif
    default:
        return false;
    }
}

static int forced_path = TG_PATH_BEST;

int tg_kernel_use_path(int path)
{
    if (path != TG_PATH_BEST && !host_has(path))
        return -1;
    forced_path = path;
    return 0;
}

int tg_kernel_path(void)
{
    if (forced_path != TG_PATH_BEST)
        return forced_path;
    return host_has(TG_PATH_AVX512) ? TG_PATH_AVX512 : host_has(TG_PATH_AVX2) ? TG_PATH_AVX2 : TG_PATH_C;
}

/* true: take the AVX2 paths (also on the AVX-512 path, where no wider code exists) */
static bool use_avx2(void) { return tg_kernel_path() >= TG_PATH_AVX2; }

/* ---- transpose ------------------------------------------------------------------------------ */

/* T = A^T for the block of A at rows i0 .. i_end - 1, columns j0 .. j_end - 1. */
static void transpose_block(int rows, int cols, const float *A, float *T, int i0, int i_end, int j0,
                            int j_end)
{
    for (int j = j0; j < j_end; j++)
        for (int i = i0; i < i_end; i++)
            T[(long)j * rows + i] = A[(long)i * cols + j];
}

#ifdef HAVE_AVX2_KERNEL
/* An 8 x 8 block in registers: rows in, interleave pairs, then quads, then halves, rows out. */
__attribute__((target("avx2")))
static void transpose_8x8_avx2(const float *a, long lda, float *t, long ldt)
{
    __m256 r[8], u[8], v[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(a + i * lda);
    for (int i = 0; i < 8; i += 2) {
        u[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        u[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        v[i] = _mm256_shuffle_ps(u[i], u[i + 2], 0x44);
        v[i + 1] = _mm256_shuffle_ps(u[i], u[i + 2], 0xEE);
        v[i + 2] = _mm256_shuffle_ps(u[i + 1], u[i + 3], 0x44);
        v[i + 3] = _mm256_shuffle_ps(u[i + 1], u[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(t + i * ldt, _mm256_permute2f128_ps(v[i], v[i + 4], 0x20));
        _mm256_storeu_ps(t + (i + 4) * ldt, _mm256_permute2f128_ps(v[i], v[i + 4], 0x31));
    }
}

/* T = A^T for the block of A at rows i0 .. i_end - 1, columns j0 .. j_end - 1, both spans
 * multiples of 8, in 8 x 8 blocks along the rows of T. */
static void transpose_tile_avx2(int rows, int cols, const float *A, float *T, int i0, int i_end, int j0,
                                int j_end)
{
    for (int j = j0; j < j_end; j += 8)
        for (int i = i0; i < i_end; i += 8)
            transpose_8x8_avx2(A + (long)i * cols + j, cols, T + (long)j * rows + i, rows);
}
#endif

/* The 8 x 8 blocks go tile by tile, TRANSPOSE_TILE x TRANSPOSE_TILE, and along the rows of T
 * inside a tile: each line of T is then written whole while it is in L1, where going along
 * the rows of A wrote half of it and came back after it had left (256 x 256: 7 µs where it
 * took 38; 1024 x 1024: 1.03 ms where it took 1.27; docs/performance.md, fifth session). */
enum { TRANSPOSE_TILE = 32 };

static int at_most(int a, int b) { return a < b ? a : b; }

void tg_kernel_transpose(int rows, int cols, const float *A, float *T)
{
    int full_rows = rows / 8 * 8, full_cols = cols / 8 * 8;
#ifdef HAVE_AVX2_KERNEL
    if (use_avx2()) {
        for (int i0 = 0; i0 < full_rows; i0 += TRANSPOSE_TILE)
            for (int j0 = 0; j0 < full_cols; j0 += TRANSPOSE_TILE)
                transpose_tile_avx2(rows, cols, A, T, i0, at_most(i0 + TRANSPOSE_TILE, full_rows), j0,
                                    at_most(j0 + TRANSPOSE_TILE, full_cols));
        transpose_block(rows, cols, A, T, 0, full_rows, full_cols, cols);
        transpose_block(rows, cols, A, T, full_rows, rows, 0, cols);
        return;
    }
#endif
    for (int i0 = 0; i0 < rows; i0 += 8)
        transpose_block(rows, cols, A, T, i0, at_most(i0 + 8, rows), 0, cols);
}

/* ---- packing ------------------------------------------------------------------------------ */

/* Copies a width x kc block of a matrix into one panel: out[p * width + i] = element (i, p),
 * where element (i, p) is at first[i * stride_i + p * stride_p]; rows past `used` are zero.
 * The loops run along whichever stride is 1, so the reads go through memory in order. */
static void pack_panel(const float *first, long stride_i, long stride_p, int used, int width, int kc,
                       float *out)
{
    if (stride_i == 1) {
        for (int p = 0; p < kc; p++)
            for (int i = 0; i < used; i++)
                out[p * width + i] = first[p * stride_p + i];
    } else if (stride_p == 1) {
        for (int i = 0; i < used; i++)
            for (int p = 0; p < kc; p++)
                out[p * width + i] = first[i * stride_i + p];
    } else {
        for (int p = 0; p < kc; p++)
            for (int i = 0; i < used; i++)
                out[p * width + i] = first[i * stride_i + p * stride_p];
    }
    for (int p = 0; p < kc; p++)
        for (int i = used; i < width; i++)
            out[p * width + i] = 0.0f;
}

/* Rows i0 .. i0 + rows - 1 (rows <= width), columns p0 .. p0 + kc - 1 of A, as one panel:
 * for each p, the width values A[i0 + 0 .. width - 1][p] (zeros past the last row). */
static void pack_a(view A, int i0, int rows, int width, int p0, int kc, float *out)
{
    pack_panel(A.p + i0 * A.row + p0 * A.col, A.row, A.col, rows, width, kc, out);
}

/* Operands whose rows lie at most NARROW floats apart are read where they lie rather than
 * packed: a block of them is a few contiguous cache lines per row, so packing would gain
 * little and costs a copy per product (a large share of a small step). */
enum { NARROW = 64 };

/* A full panel of a transposed B (element (p, j) at first[j * ld + p]): its width x kc block
 * as stored, transposed into out (kc x width) 8 x 8 at a time, where pack_panel would gather
 * one value at a time; pack_panel does what is left (the last kc % 8 rows, or all without
 * AVX2). */
static void pack_transposed_panel(const float *first, long ld, int width, int kc, float *out)
{
    int p = 0;
#ifdef HAVE_AVX2_KERNEL
    if (use_avx2())
        for (; p + 8 <= kc; p += 8)
            for (int part = 0; part < width; part += 8)
                transpose_8x8_avx2(first + part * ld + p, ld, out + p * width + part, width);
#endif
    if (p < kc)
        pack_panel(first + p, ld, 1, width, width, kc - p, out + p * width);
}

/* Rows p0 .. p0 + kc - 1, columns j0 .. j0 + nc - 1 of B, as panels of width columns: panel c
 * starts at b[c], its rows b_row[c] floats apart. Full panels of a narrow row-major B are
 * read in place; the others are packed into out (kc x width each, zeros past the last
 * column). */
static void prepare_b(view B, int p0, int kc, int j0, int nc, int width, float *out, const float **b,
                      long *b_row)
{
    bool in_place = B.col == 1 && B.row <= NARROW;
    for (int c = 0; c * width < nc; c++) {
        int nr = nc - c * width < width ? nc - c * width : width;
        const float *first = B.p + p0 * B.row + (j0 + c * width) * B.col;
        if (in_place && nr == width) {
            b[c] = first;
            b_row[c] = B.row;
        } else if (B.row == 1 && nr == width) {
            pack_transposed_panel(first, B.col, width, kc, out + c * width * kc);
            b[c] = out + c * width * kc;
            b_row[c] = width;
        } else {
            pack_panel(first, B.col, B.row, nr, width, kc, out + c * width * kc);
            b[c] = out + c * width * kc;
            b_row[c] = width;
        }
    }
}

/* ---- micro-kernels: C[0..mr-1][0..nr-1] (+)= panel a (kc x MR) times panel b (kc x NR) -- */

/* C += tile, or C = tile when store, for the top-left mr x nr of the tile. */
static void put_tile(float tile[MR][NR], float *C, long ldc, int mr, int nr, bool store)
{
    for (int i = 0; i < mr; i++) {
        float *c = C + i * ldc;
        if (store)
            memcpy(c, tile[i], (size_t)nr * sizeof(float));
        else if (nr == NR)
            for (int j = 0; j < NR; j++) /* a fixed count the compiler vectorises */
                c[j] += tile[i][j];
        else
            for (int j = 0; j < nr; j++)
                c[j] += tile[i][j];
    }
}

static void micro_kernel_c(int kc, const float *a, long a_row, long a_col, const float *b, long b_row,
                           float *C, long ldc, int mr, int nr, bool store)
{
    float tile[MR][NR] = { { 0 } };
    for (int p = 0; p < kc; p++, a += a_col, b += b_row)
        for (int i = 0; i < mr; i++)
            for (int j = 0; j < NR; j++)
                tile[i][j] += a[i * a_row] * b[j];
    put_tile(tile, C, ldc, mr, nr, store);
}

#ifdef HAVE_AVX2_KERNEL
/* The 6 x 16 tile of C lives in twelve 8-float registers, written out by hand so that no
 * compiler keeps it in memory. */
#define ROW_FMA(i)                                                      \
    do {                                                                \
        __m256 ai = _mm256_broadcast_ss(a + (i) * a_row);               \
        c##i##0 = _mm256_fmadd_ps(ai, b0, c##i##0);                     \
        c##i##1 = _mm256_fmadd_ps(ai, b1, c##i##1);                     \
    } while (0)
#define ROW_OUT(i)                                                      \
    do {                                                                \
        _mm256_storeu_ps(tile[i], c##i##0);                             \
        _mm256_storeu_ps(tile[i] + 8, c##i##1);                         \
    } while (0)
#define ROW_STORE(i)                                                    \
    do {                                                                \
        _mm256_storeu_ps(C + (i) * ldc, c##i##0);                       \
        _mm256_storeu_ps(C + (i) * ldc + 8, c##i##1);                   \
    } while (0)
#define ROW_ADD(i)                                                                      \
    do {                                                                                \
        float *row = C + (i) * ldc;                                                     \
        _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), c##i##0));            \
        _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), c##i##1));    \
    } while (0)

__attribute__((target("avx2,fma")))
static void micro_kernel_avx2(int kc, const float *a, long a_row, long a_col, const float *b, long b_row,
                              float *C, long ldc, int mr, int nr, bool store)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int p = 0; p < kc; p++, a += a_col, b += b_row) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ROW_FMA(0); ROW_FMA(1); ROW_FMA(2); ROW_FMA(3); ROW_FMA(4); ROW_FMA(5);
    }
    if (mr == MR && nr == NR && store) {
        ROW_STORE(0); ROW_STORE(1); ROW_STORE(2); ROW_STORE(3); ROW_STORE(4); ROW_STORE(5);
        return;
    }
    if (mr == MR && nr == NR) {
        ROW_ADD(0); ROW_ADD(1); ROW_ADD(2); ROW_ADD(3); ROW_ADD(4); ROW_ADD(5);
        return;
    }
    float tile[MR][NR]; /* an edge tile: only mr x nr of it lands in C */
    ROW_OUT(0); ROW_OUT(1); ROW_OUT(2); ROW_OUT(3); ROW_OUT(4); ROW_OUT(5);
    put_tile(tile, C, ldc, mr, nr, store);
}

/* The same for a panel of exactly 4 rows (mr = 4), which reads no row of A past the fourth:
 * it ends products whose height leaves 4 or 8 rows after panels of 6 (32, 64, 256, 1024),
 * where the 6-row kernel would spend a whole call, and a packed panel, on 2 rows. */
__attribute__((target("avx2,fma")))
static void micro_kernel_avx2_4(int kc, const float *a, long a_row, long a_col, const float *b, long b_row,
                                float *C, long ldc, int mr, int nr, bool store)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00;
    for (int p = 0; p < kc; p++, a += a_col, b += b_row) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        ROW_FMA(0); ROW_FMA(1); ROW_FMA(2); ROW_FMA(3);
    }
    if (nr == NR && store) {
        ROW_STORE(0); ROW_STORE(1); ROW_STORE(2); ROW_STORE(3);
        return;
    }
    if (nr == NR) {
        ROW_ADD(0); ROW_ADD(1); ROW_ADD(2); ROW_ADD(3);
        return;
    }
    float tile[MR][NR];
    ROW_OUT(0); ROW_OUT(1); ROW_OUT(2); ROW_OUT(3);
    put_tile(tile, C, ldc, mr, nr, store);
}
#endif

#ifdef HAVE_AVX2_KERNEL
/* The AVX-512 tile: `rows` (at most MR_512) rows of 32 floats in two 16-float registers each,
 * 24 accumulators at most. rows is a constant in each kernel below, so the loops over it
 * unroll and the tile stays in registers. Only rows of A below `rows` are read; columns past
 * nr are left out of C's loads and stores by masks, so an edge tile needs no copy. */
__attribute__((target("avx512f"), always_inline))
static inline void tile_avx512(int rows, int kc, const float *a, long a_row, long a_col, const float *b,
                               long b_row, float *C, long ldc, int nr, bool store)
{
    __m512 left[MR_512], right[MR_512];
    for (int i = 0; i < rows; i++)
        left[i] = right[i] = _mm512_setzero_ps();
    for (int p = 0; p < kc; p++, a += a_col, b += b_row) {
        __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
        for (int i = 0; i < rows; i++) {
            __m512 ai = _mm512_set1_ps(a[i * a_row]);
            left[i] = _mm512_fmadd_ps(ai, b0, left[i]);
            right[i] = _mm512_fmadd_ps(ai, b1, right[i]);
        }
    }
    __mmask16 left_mask = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    __mmask16 right_mask = nr >= 32 ? 0xFFFF : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : 0;
#pragma GCC unroll 12 /* as the loop above, so that no accumulator goes through memory */
    for (int i = 0; i < rows; i++) {
        float *row = C + i * ldc;
        if (!store) {
            left[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(left_mask, row), left[i]);
            right[i] = _mm512_add_ps(_mm512_maskz_loadu_ps(right_mask, row + 16), right[i]);
        }
        _mm512_mask_storeu_ps(row, left_mask, left[i]);
        _mm512_mask_storeu_ps(row + 16, right_mask, right[i]);
    }
}

/* One AVX-512 kernel per panel height, 1 to MR_512 rows (mr is the height it is named for). */
#define AVX512_KERNEL(rows)                                                                         \
    __attribute__((target("avx512f")))                                                             \
    static void micro_kernel_avx512_##rows(int kc, const float *a, long a_row, long a_col,         \
                                           const float *b, long b_row, float *C, long ldc, int mr, \
                                           int nr, bool store)                                     \
    {                                                                                              \
        (void)mr;                                                                                  \
        tile_avx512(rows, kc, a, a_row, a_col, b, b_row, C, ldc, nr, store);                       \
    }
AVX512_KERNEL(1) AVX512_KERNEL(2) AVX512_KERNEL(3) AVX512_KERNEL(4) AVX512_KERNEL(5)
AVX512_KERNEL(6) AVX512_KERNEL(7) AVX512_KERNEL(8) AVX512_KERNEL(9) AVX512_KERNEL(10)
AVX512_KERNEL(11) AVX512_KERNEL(12)
#endif

/* C[0..mr-1][0..nr-1] += A (mr x kc, element (i, p) at a[i a_row + p a_col]) times B (kc x the
 * tile's width, row p at b + p b_row: a packed panel, or a narrow row-major B where it lies);
 * = instead of += when store. Columns of B past nr must be readable (a packed edge panel has
 * zeros there), and so must rows of A past mr up to the tile's height for the AVX2 6-row
 * kernel (see reads_past_rows). */
typedef void micro_kernel_fn(int kc, const float *a, long a_row, long a_col, const float *b, long b_row,
                             float *C, long ldc, int mr, int nr, bool store);

/* How one path tiles C: row panels of at most mr rows, column panels of nr columns. */
typedef struct tiling {
    int path, mr, nr;
} tiling;

static tiling current_tiling(void)
{
    int path = tg_kernel_path();
    if (path == TG_PATH_AVX512)
        return (tiling){ path, MR_512, NR_512 };
    return (tiling){ path, MR, NR };
}

/* The kernel for a panel of mr rows: on AVX-512 the one of that height; on AVX2 the 4-row one
 * for mr = 4, the 6-row one otherwise. */
static micro_kernel_fn *pick_micro_kernel(tiling t, int mr)
{
#ifdef HAVE_AVX2_KERNEL
    static micro_kernel_fn *const avx512[MR_512 + 1] = {
        NULL, micro_kernel_avx512_1, micro_kernel_avx512_2, micro_kernel_avx512_3, micro_kernel_avx512_4,
        micro_kernel_avx512_5, micro_kernel_avx512_6, micro_kernel_avx512_7, micro_kernel_avx512_8,
        micro_kernel_avx512_9, micro_kernel_avx512_10, micro_kernel_avx512_11, micro_kernel_avx512_12,
    };
    if (t.path == TG_PATH_AVX512)
        return avx512[mr];
    if (t.path == TG_PATH_AVX2)
        return mr == 4 ? micro_kernel_avx2_4 : micro_kernel_avx2;
#endif
    (void)mr;
    return micro_kernel_c;
}

/* Whether the kernel for a panel of mr rows reads rows of A past mr (the AVX2 6-row kernel on
 * a shorter panel): such a panel is packed, with zeros below its last row. */
static bool reads_past_rows(tiling t, int mr)
{
    return t.path == TG_PATH_AVX2 && mr != 4 && mr < MR;
}

/* Rows in the panel that starts `left` rows before the end of A: the tile's height, or what
 * is left; on AVX2, 4 when 4 or 8 are left (two panels of 4 instead of 6 and a wasteful 2). */
static int panel_rows(tiling t, int left)
{
    if (t.path == TG_PATH_AVX2 && (left == 4 || left == 8))
        return 4;
    return left < t.mr ? left : t.mr;
}

/* ---- the blocked product: C (m x n, row-major) += A B, with A and B given as views ------- */

static _Thread_local float packed_a[MR_512 * KC] __attribute__((aligned(64)));
static _Thread_local float packed_b[KC * NC] __attribute__((aligned(64)));

/* The block of B that this thread prepared last: which product (the number gemm_packed gives
 * each product it splits; 0 for one it does not) and where, and its panels. A thread that
 * runs several tasks of one split product needs the same block for each when B is one block
 * (see block_columns), and prepares it once. */
static _Thread_local struct prepared {
    unsigned long product;
    int p0, j0;
    const float *b[NC_WIDE / NR];
    long b_row[NC_WIDE / NR];
} prepared;

/* The number of the last product split over the pool (gemm_packed), from any thread. */
static _Atomic unsigned long products_split;

/* Columns in a block of B with k rows: NC, or for a B with fewer rows than KC as many as
 * keep the block within KC x NC floats, a multiple of NC up to NC_WIDE (so that B with k <=
 * 64 and n <= 1,024, the weights' gradients at a batch of 64, is one block). */
static int block_columns(int k)
{
    int columns = k >= KC ? NC : KC * NC / k / NC * NC;
    return columns < NC_WIDE ? columns : NC_WIDE;
}

/* A block of B is prepared once and serves every row panel of A. A panel of rows of A is read
 * where it lies when A is row-major (its mr x kc floats stay in L1 across the whole row of C)
 * or a narrow transposed A (its mr values for each p are contiguous); a wide transposed A
 * (whose panel would span kc pages) and a short panel that the kernel would read past are
 * packed, with zeros below the last rows. */
static void gemm_blocked(int m, int n, int k, view A, view B, float *C, bool overwrite, unsigned long product)
{
    const float *const *b = prepared.b;
    const long *b_row = prepared.b_row;
    tiling t = current_tiling();
    bool a_in_place = A.col == 1 || (A.row == 1 && A.col <= NARROW);
    /* A C larger than L1 (a weight's gradient, or a result whose memory has not been touched
     * since the previous step) is likely not there when a tile is added to it: its rows are
     * asked for when the tile starts, so that they arrive while the tile is computed. */
    bool prefetch_c = (long)m * n * (long)sizeof(float) > C_PREFETCH_BYTES;
    int block = block_columns(k);
    for (int j0 = 0; j0 < n; j0 += block) {
        int nc = n - j0 < block ? n - j0 : block;
        for (int p0 = 0; p0 < k; p0 += KC) {
            int kc = k - p0 < KC ? k - p0 : KC;
            if (product == 0 || prepared.product != product || prepared.p0 != p0 || prepared.j0 != j0) {
                prepare_b(B, p0, kc, j0, nc, t.nr, packed_b, prepared.b, prepared.b_row);
                prepared.product = product, prepared.p0 = p0, prepared.j0 = j0;
            }
            for (int ir = 0, mr; ir < m; ir += mr) {
                mr = panel_rows(t, m - ir);
                micro_kernel_fn *kernel = pick_micro_kernel(t, mr);
                const float *a = A.p + ir * A.row + p0 * A.col;
                long a_row = A.row, a_col = A.col;
                if (reads_past_rows(t, mr) || !a_in_place) {
                    pack_a(A, ir, mr, t.mr, p0, kc, packed_a);
                    a = packed_a, a_row = 1, a_col = t.mr;
                }
                for (int jr = 0; jr < nc; jr += t.nr) {
                    float *c = C + (long)ir * n + j0 + jr;
                    if (prefetch_c && !(overwrite && p0 == 0))
                        for (int i = 0; i < mr; i++)
                            for (int j = 0; j < t.nr; j += 16) /* a 64-byte line at a time */
                                __builtin_prefetch(c + (long)i * n + j, 1, 3);
                    kernel(kc, a, a_row, a_col, b[jr / t.nr], b_row[jr / t.nr], c, n, mr,
                           nc - jr < t.nr ? nc - jr : t.nr, overwrite && p0 == 0);
                }
            }
        }
    }
}

/* The dot product of n floats at a and b, in LANES partial sums (which vectorise). */
enum { LANES = 8 };

static float dot(long n, const float *a, const float *b)
{
    float lane[LANES] = { 0 };
    long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            lane[l] += a[i + l] * b[i + l];
    float sum = 0.0f;
    for (; i < n; i++)
        sum += a[i] * b[i];
    for (int l = 0; l < LANES; l++)
        sum += lane[l];
    return sum;
}

/* Direct loops for products too small or too thin (a few columns, or a short k) to repay the
 * packing, with the innermost loop along rows that are contiguous: B's for A B and A^T B
 * (B row-major), A's and B's for A B^T (both row-major as stored). */
static void gemm_direct(int m, int n, int k, view A, view B, float *C, bool overwrite)
{
    for (int i = 0; i < m; i++) {
        float *restrict c = C + (long)i * n; /* C never overlaps A or B */
        if (B.col == 1) { /* row i of C += A[i][p] times row p of B */
            for (int p = 0; p < k; p++) {
                float a = at(A, i, p);
                const float *restrict b = B.p + p * B.row;
                if (p == 0 && overwrite)
                    for (int j = 0; j < n; j++)
                        c[j] = a * b[j];
                else
                    for (int j = 0; j < n; j++)
                        c[j] += a * b[j];
            }
        } else { /* A B^T: row i of A against row j of B as stored */
            for (int j = 0; j < n; j++)
                c[j] = (overwrite ? 0.0f : c[j]) + dot(k, A.p + i * A.row, B.p + j * B.col);
        }
    }
}

/* Rows first .. first + rows - 1 of C (m x n) set from c: c's own rows (c_cols n), or c[i]
 * in every column of row i (c_cols 1). */
static void fill_rows(const float *c, int c_cols, int n, int first, int rows, float *C)
{
    for (int i = first; i < first + rows; i++) {
        float *row = C + (long)i * n;
        if (c_cols == 1)
            for (int j = 0; j < n; j++)
                row[j] = c[i];
        else
            memcpy(row, c + (long)i * n, (size_t)n * sizeof(float));
    }
}

/* A product split into tasks by disjoint blocks of C: task t computes rows t * per_task
 * onwards, after setting them from c when c is not NULL (so that each block is written first
 * by the thread that adds to it, and stays in that core's cache). Every element of C is
 * computed by the same sequence of operations whichever block holds it, so the result is the
 * same, bit for bit, for any split and any thread count. */
typedef struct product_split {
    unsigned long product;             /* its number, never 0 (see prepared) */
    int m, n, k, per_task;
    view A, B;
    float *C;
    bool overwrite;
    const float *c;
    int c_cols;
} product_split;

static void gemm_task(void *ctx, int task)
{
    product_split *s = ctx;
    int first = task * s->per_task;
    int rows = s->m - first < s->per_task ? s->m - first : s->per_task;
    if (rows <= 0)
        return;
    if (s->c)
        fill_rows(s->c, s->c_cols, s->n, first, rows, s->C);
    view A = { s->A.p + first * s->A.row, s->A.row, s->A.col };
    gemm_blocked(rows, s->n, s->k, A, s->B, s->C + (long)first * s->n, s->overwrite, s->product);
}

/* Products from PARALLEL_MIN multiply-adds are split into tasks of about TASK_WORK each, at
 * most TASKS_PER_THREAD per thread: a thread that has run its share takes what is left of
 * the others' (threads.c), so one that starts late or runs slower (its operands in the other
 * core's cache) runs fewer, and the last task, which the others wait for, is short. */
#define TASK_WORK (1L << 18)
enum { TASKS_PER_THREAD = 8 };

/* gemm for products that repay the packing, C first set from c when c is not NULL (see
 * fill_rows): on this thread or split over the pool by rows (each thread packs the blocks of
 * B its tasks read itself, once for all its tasks when B is one block: splitting by columns
 * instead, so that each packs only its own, was slower on two threads; docs/performance.md,
 * Threads). Kept out of line, so that a tiny product does not pay for its stack frame. */
__attribute__((noinline))
static void gemm_packed(int m, int n, int k, view A, view B, float *C, bool overwrite, const float *c,
                        int c_cols)
{
    long work = (long)m * n * k;
    int threads = tg_thread_count();
    tiling t = current_tiling();
    long tasks = work / TASK_WORK;
    if (tasks > (long)threads * TASKS_PER_THREAD)
        tasks = (long)threads * TASKS_PER_THREAD;
    if (tasks > m / t.mr)
        tasks = m / t.mr;
    if (threads == 1 || work < PARALLEL_MIN || tasks < 2) {
        if (c)
            fill_rows(c, c_cols, n, 0, m, C);
        gemm_blocked(m, n, k, A, B, C, overwrite, 0);
        return;
    }
    int per_task = (int)((m + tasks - 1) / tasks);
    per_task = (per_task + t.mr - 1) / t.mr * t.mr;
    product_split split = { atomic_fetch_add(&products_split, 1) + 1, m, n, k, per_task, A, B, C, overwrite, c,
                            c_cols };
    tg_parallel_for((m + per_task - 1) / per_task, gemm_task, &split);
}

/* The plainest loops, for products of a few multiply-adds (a batch of one, a hidden size of
 * a few): kept scalar, because the vectorised loops' set-up costs many times their work. The
 * views come by address: copied by value, each would be written as two 8-byte halves and read
 * back as one 16-byte load, which the CPU cannot forward from the stores (a stall that took
 * a fifth of S's step: docs/performance.md, Small sizes). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-vectorize")))
#endif
static void gemm_scalar(int m, int n, int k, const view *A, const view *B, float *C, bool overwrite)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float sum = 0.0f;
            for (int p = 0; p < k; p++)
                sum += at(*A, i, p) * at(*B, p, j);
            C[(long)i * n + j] = overwrite ? sum : C[(long)i * n + j] + sum;
        }
}

/* Whether an m x n x k product repays the packing (gemm_packed) rather than direct loops. */
static bool repays_packing(int m, int n, int k)
{
    return (long)m * n * k > TINY && n >= THIN && k >= THIN;
}

/* C += A B, or C = A B when overwrite (C's old values are never read then). Inlined into
 * each kernel below, so that the views stay in registers on the way to gemm_scalar. */
__attribute__((always_inline))
static inline void gemm(int m, int n, int k, view A, view B, float *C, bool overwrite)
{
    if ((long)m * n * k <= SCALAR_MAX)
        gemm_scalar(m, n, k, &A, &B, C, overwrite);
    else if (!repays_packing(m, n, k))
        gemm_direct(m, n, k, A, B, C, overwrite);
    else
        gemm_packed(m, n, k, A, B, C, overwrite, NULL, 0);
}

void tg_kernel_matmul(int m, int n, int k, const float *A, const float *B, float *C, int accumulate)
{
    gemm(m, n, k, (view){ A, k, 1 }, (view){ B, n, 1 }, C, !accumulate);
}

void tg_kernel_matmul_add(int m, int n, int k, const float *A, const float *B, const float *c, int c_cols,
                          float *C)
{
    view a = { A, k, 1 }, b = { B, n, 1 };
    if (repays_packing(m, n, k)) {
        gemm_packed(m, n, k, a, b, C, false, c, c_cols);
        return;
    }
    fill_rows(c, c_cols, n, 0, m, C);
    gemm(m, n, k, a, b, C, false);
}

void tg_kernel_matmul_nt(int m, int n, int k, const float *A, const float *B, float *C)
{
    gemm(m, n, k, (view){ A, k, 1 }, (view){ B, 1, k }, C, false);
}

void tg_kernel_matmul_tn(int m, int n, int k, const float *A, const float *B, float *C)
{
    gemm(m, n, k, (view){ A, 1, m }, (view){ B, n, 1 }, C, false);
}

/* ---- elementwise work split over the pool ------------------------------------------------ */

/* Elementwise passes from SPLIT_MIN values are split over the pool, in ranges that start at
 * multiples of SPLIT_ALIGN (a whole number of 16-float vectors). Below it, handing the work
 * out would cost about what it saves (docs/performance.md, Threads). */
#define SPLIT_MIN (1L << 14)
enum { SPLIT_ALIGN = 64 };

typedef struct range_split {
    long n, per_task;
    void (*run)(void *ctx, long first, long count);
    void *ctx;
} range_split;

static void range_task(void *ctx, int task)
{
    const range_split *s = ctx;
    long first = task * s->per_task;
    long count = s->n - first < s->per_task ? s->n - first : s->per_task;
    if (count > 0)
        s->run(s->ctx, first, count);
}

/* Runs run(ctx, first, count) over disjoint ranges that cover 0 .. n - 1: one range on the
 * caller's thread when n is small or there is one thread, else 64-aligned ranges spread over
 * the pool. Inline, so that a short pass calls its run directly, without the indirect call (a
 * tenth of S's step). */
static inline void split_ranges(long n, void (*run)(void *ctx, long first, long count), void *ctx)
{
    int threads = n < SPLIT_MIN ? 1 : tg_thread_count();
    if (threads == 1) {
        run(ctx, 0, n);
        return;
    }
    long per_task = (n + threads - 1) / threads;
    per_task = (per_task + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    range_split split = { n, per_task, run, ctx };
    tg_parallel_for((int)((n + per_task - 1) / per_task), range_task, &split);
}

/* ---- tanh and sigmoid ------------------------------------------------------------------------
 * Without libm calls: one exponential by range reduction and a polynomial serves both, within
 * 2 FLT_EPSILON (2.4e-7) relative error (a few units in the last place) where the result is
 * a normal float, and within 3 FLT_TRUE_MIN where it is subnormal (sigmoid below -87.3, down
 * to 0 below -103.97); the AVX2 version does 8 at once,
 * the AVX-512 one 16. */

typedef union { float f; int32_t i; } float_bits;

/* Sigmoid takes e^-|x| down to e^-104, where 2^n is no float (n below -126), so it works
 * with 2^SCALE_SHIFT e^-|x| and divides that by 2^SCALE_SHIFT (1 + e^-|x|): scaled by a power
 * of two, the quotient and its rounding are the same, and a subnormal one is rounded once. */
#define SCALE_SHIFT 64
#define SCALE 0x1p64f /* 2^SCALE_SHIFT */

/* e^y = 2^n (1 + m) for y in [-104, 0]: returns m = e^r - 1 with r = y - n ln 2,
 * |r| <= ln2 / 2, and sets *two_n = 2^(n + shift) (shift >= 0; n + shift >= -126). m keeps
 * full relative precision even when y is tiny. */
static inline float exp_parts(float y, int shift, float *two_n)
{
    const float log2e = 1.44269504f, ln2_hi = 0.693145751953125f, ln2_lo = 1.42860677e-6f;
    float n = (float)(int)(y * log2e - 0.5f); /* y <= 0: rounds to the nearest integer */
    float r = (y - n * ln2_hi) - n * ln2_lo;
    float m = r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120
              + r * (1.0f / 720 + r * (1.0f / 5040 + r * (1.0f / 40320))))))));
    float_bits bits = { .i = ((int32_t)n + shift + 127) << 23 };
    *two_n = bits.f;
    return m;
}

/* tanh|x| = -expm1(-2|x|) / (2 + expm1(-2|x|)), with the sign of x; NaN stays NaN. */
static inline float tanh_one(float x)
{
    float a = fabsf(x), two_n;
    a = a < 9.0f ? a : 9.0f; /* tanh(9) rounds to 1 */
    float m = exp_parts(-2.0f * a, 0, &two_n);
    float expm1 = two_n * m + (two_n - 1.0f);
    float t = copysignf(-expm1 / (2.0f + expm1), x);
    return x == x ? t : x;
}

/* 1 / (1 + e^-|x|) for x >= 0, e^-|x| / (1 + e^-|x|) below; NaN stays NaN. */
static inline float sigmoid_one(float x)
{
    float a = fabsf(x), two_n;
    float m = exp_parts(a < 104.0f ? -a : -104.0f, SCALE_SHIFT, &two_n); /* e^-104 rounds to 0 */
    float e = two_n + two_n * m; /* 2^SCALE_SHIFT e^-|x| */
    float s = (x >= 0.0f ? SCALE : e) / (SCALE + e);
    return x == x ? s : x;
}

#ifdef HAVE_AVX2_KERNEL
/* exp_parts, tanh_one and sigmoid_one for 8 floats at once, step for step. */
__attribute__((target("avx2,fma")))
static __m256 exp_parts8(__m256 y, int shift, __m256 *two_n)
{
    __m256 n = _mm256_round_ps(_mm256_mul_ps(y, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), y);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.42860677e-6f), r);
    __m256 m = _mm256_set1_ps(1.0f / 40320);
    static const float taylor[7] = { 1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 1.0f / 2, 1.0f };
    for (int i = 0; i < 7; i++)
        m = _mm256_fmadd_ps(m, r, _mm256_set1_ps(taylor[i]));
    __m256i exponent = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(shift + 127));
    *two_n = _mm256_castsi256_ps(_mm256_slli_epi32(exponent, 23));
    return _mm256_mul_ps(m, r);
}

__attribute__((target("avx2,fma")))
static void tanh_avx2(long n, const float *x, float *y)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), one = _mm256_set1_ps(1.0f);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), two_n;
        __m256 a = _mm256_min_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(9.0f));
        __m256 m = exp_parts8(_mm256_mul_ps(a, _mm256_set1_ps(-2.0f)), 0, &two_n);
        __m256 expm1 = _mm256_fmadd_ps(two_n, m, _mm256_sub_ps(two_n, one));
        __m256 t = _mm256_div_ps(_mm256_sub_ps(_mm256_setzero_ps(), expm1), _mm256_add_ps(_mm256_set1_ps(2.0f), expm1));
        t = _mm256_or_ps(t, _mm256_and_ps(sign, v));
        _mm256_storeu_ps(y + i, _mm256_blendv_ps(t, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    }
    for (; i < n; i++)
        y[i] = tanh_one(x[i]);
}

__attribute__((target("avx2,fma")))
static void sigmoid_avx2(long n, const float *x, float *y)
{
    const __m256 sign = _mm256_set1_ps(-0.0f), scale = _mm256_set1_ps(SCALE);
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i), two_n;
        __m256 a = _mm256_min_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(104.0f));
        __m256 m = exp_parts8(_mm256_sub_ps(_mm256_setzero_ps(), a), SCALE_SHIFT, &two_n);
        __m256 e = _mm256_fmadd_ps(two_n, m, two_n);
        __m256 top = _mm256_blendv_ps(e, scale, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ));
        __m256 s = _mm256_div_ps(top, _mm256_add_ps(scale, e));
        _mm256_storeu_ps(y + i, _mm256_blendv_ps(s, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    }
    for (; i < n; i++)
        y[i] = sigmoid_one(x[i]);
}

/* The same for 16 floats at once, the last n % 16 through masks. Bitwise steps go through
 * the integer view, which AVX-512F has for 512-bit registers. */
__attribute__((target("avx512f")))
static __m512 exp_parts16(__m512 y, int shift, __m512 *two_n)
{
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), y);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860677e-6f), r);
    __m512 m = _mm512_set1_ps(1.0f / 40320);
    static const float taylor[7] = { 1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 1.0f / 2, 1.0f };
    for (int i = 0; i < 7; i++)
        m = _mm512_fmadd_ps(m, r, _mm512_set1_ps(taylor[i]));
    __m512i exponent = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(shift + 127));
    *two_n = _mm512_castsi512_ps(_mm512_slli_epi32(exponent, 23));
    return _mm512_mul_ps(m, r);
}

/* The first count lanes of a 16-float vector (all 16 when count >= 16). */
__attribute__((target("avx512f")))
static __mmask16 first_lanes(long count)
{
    return count >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << count) - 1);
}

__attribute__((target("avx512f")))
static __m512 tanh16(__m512 v)
{
    const __m512i sign = _mm512_set1_epi32(INT32_MIN);
    const __m512 one = _mm512_set1_ps(1.0f);
    __m512 two_n;
    __m512 a = _mm512_min_ps(_mm512_abs_ps(v), _mm512_set1_ps(9.0f));
    __m512 m = exp_parts16(_mm512_mul_ps(a, _mm512_set1_ps(-2.0f)), 0, &two_n);
    __m512 expm1 = _mm512_fmadd_ps(two_n, m, _mm512_sub_ps(two_n, one));
    __m512 t = _mm512_div_ps(_mm512_sub_ps(_mm512_setzero_ps(), expm1),
                             _mm512_add_ps(_mm512_set1_ps(2.0f), expm1));
    __m512i v_sign = _mm512_and_si512(_mm512_castps_si512(v), sign);
    t = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(t), v_sign));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), t, v);
}

__attribute__((target("avx512f")))
static __m512 sigmoid16(__m512 v)
{
    const __m512 scale = _mm512_set1_ps(SCALE);
    __m512 two_n;
    __m512 a = _mm512_min_ps(_mm512_abs_ps(v), _mm512_set1_ps(104.0f));
    __m512 m = exp_parts16(_mm512_sub_ps(_mm512_setzero_ps(), a), SCALE_SHIFT, &two_n);
    __m512 e = _mm512_fmadd_ps(two_n, m, two_n); /* 2^SCALE_SHIFT e^-|x|, as sigmoid_one */
    __m512 top = _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_GE_OQ), e, scale);
    __m512 s = _mm512_div_ps(top, _mm512_add_ps(scale, e));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), s, v);
}

__attribute__((target("avx512f")))
static void tanh_avx512(long n, const float *x, float *y)
{
    for (long i = 0; i < n; i += 16) {
        __mmask16 lanes = first_lanes(n - i);
        _mm512_mask_storeu_ps(y + i, lanes, tanh16(_mm512_maskz_loadu_ps(lanes, x + i)));
    }
}

__attribute__((target("avx512f")))
static void sigmoid_avx512(long n, const float *x, float *y)
{
    for (long i = 0; i < n; i += 16) {
        __mmask16 lanes = first_lanes(n - i);
        _mm512_mask_storeu_ps(y + i, lanes, sigmoid16(_mm512_maskz_loadu_ps(lanes, x + i)));
    }
}
#endif

/* The arguments of an elementwise kernel split into ranges (split_ranges). */
typedef struct map_args {
    int path;
    float alpha;
    const float *x;
    float *y;
} map_args;

static void tanh_range(void *ctx, long first, long n)
{
    const map_args *m = ctx;
    const float *x = m->x + first;
    float *y = m->y + first;
#ifdef HAVE_AVX2_KERNEL
    if (m->path == TG_PATH_AVX512) {
        tanh_avx512(n, x, y);
        return;
    }
    if (m->path == TG_PATH_AVX2) {
        tanh_avx2(n, x, y);
        return;
    }
#endif
    for (long i = 0; i < n; i++)
        y[i] = tanh_one(x[i]);
}

static void sigmoid_range(void *ctx, long first, long n)
{
    const map_args *m = ctx;
    const float *x = m->x + first;
    float *y = m->y + first;
#ifdef HAVE_AVX2_KERNEL
    if (m->path == TG_PATH_AVX512) {
        sigmoid_avx512(n, x, y);
        return;
    }
    if (m->path == TG_PATH_AVX2) {
        sigmoid_avx2(n, x, y);
        return;
    }
#endif
    for (long i = 0; i < n; i++)
        y[i] = sigmoid_one(x[i]);
}

void tg_kernel_tanh(long n, const float *x, float *y)
{
    split_ranges(n, tanh_range, &(map_args){ tg_kernel_path(), 0.0f, x, y });
}

void tg_kernel_sigmoid(long n, const float *x, float *y)
{
    split_ranges(n, sigmoid_range, &(map_args){ tg_kernel_path(), 0.0f, x, y });
}

/* ---- elementwise and reductions ------------------------------------------------------------ */

static inline void axpy_loop(long n, float alpha, const float *x, float *y)
{
    for (long i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

TG_ELEMENTWISE
static void axpy_range(void *ctx, long first, long n)
{
    const map_args *m = ctx;
    axpy_loop(n, m->alpha, m->x + first, m->y + first);
}

TG_ELEMENTWISE
void tg_kernel_axpy(long n, float alpha, const float *x, float *y)
{
    split_ranges(n, axpy_range, &(map_args){ TG_PATH_C, alpha, x, y });
}

/* Sums go through LANES independent float partial sums (which the compiler vectorises, as
 * they need no reordering of any one sum), added up at the end in double: as accurate as a
 * pairwise sum for the sizes here, and several times faster than one running double. */

TG_ELEMENTWISE
float tg_kernel_sum(long n, const float *x)
{
    float lane[LANES] = { 0 };
    long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            lane[l] += x[i + l];
    double sum = 0.0;
    for (; i < n; i++)
        sum += x[i];
    for (int l = 0; l < LANES; l++)
        sum += lane[l];
    return (float)sum;
}

TG_ELEMENTWISE
double tg_kernel_sum_squared_difference(long n, const float *a, const float *b)
{
    float lane[LANES] = { 0 };
    long i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float d = a[i + l] - b[i + l];
            lane[l] += d * d;
        }
    double sum = 0.0;
    for (; i < n; i++)
        sum += (double)(a[i] - b[i]) * (a[i] - b[i]);
    for (int l = 0; l < LANES; l++)
        sum += lane[l];
    return sum;
}

/* out[i] += the sum of row i of X for the rows of one task: blocks of ROWS_PER_TASK rows,
 * each row summed as on one thread. */
typedef struct row_sums_job {
    int rows, cols;
    const float *X;
    float *out;
} row_sums_job;

enum { ROWS_PER_TASK = 32 };

static void row_sums_task(void *ctx, int task)
{
    const row_sums_job *j = ctx;
    int end = (task + 1) * ROWS_PER_TASK < j->rows ? (task + 1) * ROWS_PER_TASK : j->rows;
    for (int i = task * ROWS_PER_TASK; i < end; i++)
        j->out[i] += tg_kernel_sum(j->cols, j->X + (size_t)i * j->cols);
}

void tg_kernel_add_row_sums(int rows, int cols, const float *X, float *out)
{
    row_sums_job job = { rows, cols, X, out };
    int tasks = (rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK;
    if ((long)rows * cols < SPLIT_MIN || tg_thread_count() == 1)
        for (int task = 0; task < tasks; task++)
            row_sums_task(&job, task);
    else
        tg_parallel_for(tasks, row_sums_task, &job);
}
