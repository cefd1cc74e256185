/* rt-min/x86/ck_gemm_driver.h - the blocking, packing and threading shared by
 * the AVX2 and AVX-512 GEMMs. Not a public header: each ISA file defines
 *   CKG_MR, CKG_NR   micro-tile (rows broadcast from packed A, columns as
 *                    vectors of packed B), CKG_KC, CKG_NC  cache blocks,
 *   CKG_ENTRY        the name of the public entry point to define, and
 *   static void ckg_kernel(int64_t kc, const float *ap, const float *bp,
 *                          float *c, int64_t ldc, int load_c, const float *pf)
 * (one full CKG_MR x CKG_NR tile: c = (load_c ? c : 0) + ap-panel @ bp-panel
 * as per-element fma chains in k order; pf is the C tile that comes next, to
 * prefetch), optionally CKG_HAS_EDGE with
 *   static void ckg_kernel_edge(kc, ap, bp, c, ldc, load_c, int mr, int nr)
 * (a partial mr x nr tile written in place; without it edge tiles run the
 * full kernel on a padded copy), then includes this file once. It needs
 * <immintrin.h> (AVX, for the transposing packers).
 *
 * Loop nest (BLIS's, with the roles of A and B swapped because C is row-major
 * and vectors run along N), over a rectangle of C (ckg_rect):
 *   jc over N by CKG_NC      B block (CKG_KC x CKG_NC, packed) in L2
 *     pc over K by CKG_KC    k blocks in order: the fma chain continues via C
 *       pack the B block, then for each MR-row tile take its A micro-panel
 *       (CKG_MR x CKG_KC, in L1) and sweep every B micro-panel
 * One thread runs the whole product as one rectangle. On the pool the
 * product is a grid of rectangles (ckg_grid: at most CKG_MAX_CHUNKS, chosen
 * from the shape only), one parallel region: each chunk packs its own B
 * block into its thread's slot, so packed panels never move between cores
 * and there is no barrier per block. When several column blocks share the
 * rows, A is packed once up front by a first region. k is never split and
 * every element belongs to one rectangle, so any thread count (and any grid)
 * computes the same bits. */
#ifndef CKG_MR
#error "define CKG_MR, CKG_NR, CKG_KC, CKG_NC, CKG_ENTRY and ckg_kernel first"
#endif

#include <stdlib.h>
#include <string.h>

/* Floats of per-thread scratch: A micro-panel, an edge tile, and the B block
 * of the rectangles (or whole batch items) that thread runs. */
#define CKG_A_FLOATS ((size_t)CKG_MR * CKG_KC)
#define CKG_T_FLOATS ((size_t)CKG_MR * CKG_NR)
#define CKG_B_FLOATS ((size_t)CKG_KC * CKG_NC)
#define CKG_SLOT_BYTES ((CKG_A_FLOATS + CKG_T_FLOATS + CKG_B_FLOATS) * sizeof(float))
/* Work (multiply-adds) below which threads cost more than they save. */
#define CKG_SERIAL_WORK ((int64_t)1 << 20)
/* Multiply-adds per chunk of the grid wanted (a few microseconds of work,
 * so one claim costs little against it), and at most this many chunks. */
#define CKG_CHUNK_WORK ((int64_t)1 << 18)
#define CKG_MAX_CHUNKS 48
/* The grid's cost model (ckg_grid), in units of the product's time:
 * packing a float of A or B costs about what CKG_PACK_COST multiply-adds do
 * at the FMA peak (mostly fetching it from memory: packing B once was 10-11%
 * of a 256-row product, 32 / 256 = 12.5%); fetching an A micro-panel packed
 * by another chunk about CKG_FETCH_COST of a sweep over one micro-panel; a
 * parallel region (publish, wake, wait) about CKG_REGION_WORK multiply-adds. */
#define CKG_PACK_COST 32.0
#define CKG_FETCH_COST 0.4
#define CKG_REGION_WORK ((int64_t)1 << 19)
/* Most packed A held at once (bytes, shared scratch): a bigger A is packed
 * and swept in passes over k. */
#define CKG_APACK_BYTES ((size_t)4 << 20)

typedef struct CkgJob {
  CkPool *pool;
  float *out;
  const float *a, *b;
  int64_t M, N, K;
  int ta, tb;
  int load0;        /* the first k block continues from out (accumulate) */
  int64_t jc, nc, pc, kc;
  int64_t npanels;  /* micro-panels in the current B block */
  int64_t grid_rows, grid_cols; /* the chunk grid of the parallel path */
  int64_t k0, k1;   /* the k range of the current pass (whole K but for big A) */
  float *bpack;     /* packed B block being swept (the running thread's slot) */
  float *apack;     /* all of A packed up front (shared), or NULL */
  float *own;       /* scratch when pool is NULL: one slot */
  /* batch-parallel path */
  int64_t a_bstride, b_bstride;
  int flags;
} CkgJob;

static float *ckg_slot(CkgJob *j, int tid) {
  return j->pool ? (float *)ck_pool_scratch(j->pool, tid, CKG_SLOT_BYTES) : j->own;
}

/* dst[k*W + r] = src[r*ld + k] for r < rows, k < kc: eight rows of src at a
 * time through an 8x8 transpose in ymm registers (AVX, present in both ISA
 * builds); a scalar copy moves the k tail. Packing a transposed operand is
 * on the critical path of small-M products (batch-1 inference packs as
 * many floats as it multiplies), so it runs at vector speed. */
static void ckg_tr8(float *dst, int W, const float *src, int64_t ld, int64_t kc) {
  int64_t k = 0;
  int r;
  /* Each ymm holds 4 k of row q (low half) and of row q + 4 (high half), so
   * two in-lane shuffle stages finish the transpose (16 shuffles per 64
   * floats instead of 24 with a cross-lane stage). */
#define CKG_LD2(q, kk)                                                                       \
  _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(src + (q)*ld + (kk))),            \
                       _mm_loadu_ps(src + ((q) + 4) * ld + (kk)), 1)
  for (; k + 8 <= kc; k += 8) {
    __m256 r0 = CKG_LD2(0, k), r1 = CKG_LD2(1, k), r2 = CKG_LD2(2, k), r3 = CKG_LD2(3, k);
    __m256 r4 = CKG_LD2(0, k + 4), r5 = CKG_LD2(1, k + 4), r6 = CKG_LD2(2, k + 4);
    __m256 r7 = CKG_LD2(3, k + 4);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
    __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
    __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
    __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    float *d = dst + k * W;
    _mm256_storeu_ps(d, _mm256_shuffle_ps(t0, t2, 0x44));
    _mm256_storeu_ps(d + W, _mm256_shuffle_ps(t0, t2, 0xee));
    _mm256_storeu_ps(d + 2 * W, _mm256_shuffle_ps(t1, t3, 0x44));
    _mm256_storeu_ps(d + 3 * W, _mm256_shuffle_ps(t1, t3, 0xee));
    _mm256_storeu_ps(d + 4 * W, _mm256_shuffle_ps(t4, t6, 0x44));
    _mm256_storeu_ps(d + 5 * W, _mm256_shuffle_ps(t4, t6, 0xee));
    _mm256_storeu_ps(d + 6 * W, _mm256_shuffle_ps(t5, t7, 0x44));
    _mm256_storeu_ps(d + 7 * W, _mm256_shuffle_ps(t5, t7, 0xee));
  }
#undef CKG_LD2
  for (; k < kc; k++)
    for (r = 0; r < 8; r++) dst[k * W + r] = src[r * ld + k];
}

/* The same for four rows (4x4 transposes in xmm registers). */
static void ckg_tr4(float *dst, int W, const float *src, int64_t ld, int64_t kc) {
  int64_t k = 0;
  int r;
  for (; k + 4 <= kc; k += 4) {
    __m128 r0 = _mm_loadu_ps(src + k), r1 = _mm_loadu_ps(src + ld + k);
    __m128 r2 = _mm_loadu_ps(src + 2 * ld + k), r3 = _mm_loadu_ps(src + 3 * ld + k);
    __m128 t0 = _mm_unpacklo_ps(r0, r1), t1 = _mm_unpackhi_ps(r0, r1);
    __m128 t2 = _mm_unpacklo_ps(r2, r3), t3 = _mm_unpackhi_ps(r2, r3);
    float *d = dst + k * W;
    _mm_storeu_ps(d, _mm_movelh_ps(t0, t2));
    _mm_storeu_ps(d + W, _mm_movehl_ps(t2, t0));
    _mm_storeu_ps(d + 2 * W, _mm_movelh_ps(t1, t3));
    _mm_storeu_ps(d + 3 * W, _mm_movehl_ps(t3, t1));
  }
  for (; k < kc; k++)
    for (r = 0; r < 4; r++) dst[k * W + r] = src[r * ld + k];
}

/* Packs a transposed panel: dst[k*W + r] = src[r*ld + k] for r < rows (each
 * row of src contiguous in k), rows past `rows` up to W are zero. */
static void ckg_pack_t(float *dst, int W, const float *src, int64_t ld, int rows, int64_t kc) {
  int64_t k;
  int r = 0;
  for (; r + 8 <= rows; r += 8) ckg_tr8(dst + r, W, src + r * ld, ld, kc);
  for (; r + 4 <= rows; r += 4) ckg_tr4(dst + r, W, src + r * ld, ld, kc);
  for (; r < rows; r++)
    for (k = 0; k < kc; k++) dst[k * W + r] = src[r * ld + k];
  if (rows < W)
    for (k = 0; k < kc; k++)
      for (r = rows; r < W; r++) dst[k * W + r] = 0.0f;
}

/* Packs a panel stored along W: dst[k*W + c] = src[k*ld + c] for c < cols,
 * zero past it. A full row is one fixed-size copy (vector moves). */
static void ckg_pack_n(float *dst, int W, const float *src, int64_t ld, int cols, int64_t kc) {
  int64_t k;
  int c;
  if (cols == W) {
    for (k = 0; k < kc; k++) memcpy(dst + k * W, src + k * ld, (size_t)W * sizeof(float));
    return;
  }
  for (k = 0; k < kc; k++) {
    for (c = 0; c < cols; c++) dst[k * W + c] = src[k * ld + c];
    for (; c < W; c++) dst[k * W + c] = 0.0f;
  }
}

/* A micro-panel of row tile it: ap[k*MR + r] = opA[i0 + r, pc + k], rows past
 * the matrix edge are zero so the kernel can always run a full tile (the
 * padding never reaches out). */
static void ckg_pack_a(float *ap, const CkgJob *j, int64_t it) {
  int64_t i0 = it * CKG_MR;
  int mr = (int)(j->M - i0 < CKG_MR ? j->M - i0 : CKG_MR);
  if (j->ta) /* A stored K x M */
    ckg_pack_n(ap, CKG_MR, j->a + j->pc * j->M + i0, j->M, mr, j->kc);
  else
    ckg_pack_t(ap, CKG_MR, j->a + i0 * j->K + j->pc, j->K, mr, j->kc);
}

/* B micro-panel jp of the current block: bp[k*NR + c] = opB[pc + k, j0 + c],
 * columns past the matrix edge are zero. */
static void ckg_pack_b(float *bp, const CkgJob *j, int64_t jp) {
  int64_t j0 = j->jc + jp * CKG_NR;
  int nr = (int)(j->N - j0 < CKG_NR ? j->N - j0 : CKG_NR);
  if (j->tb) /* B stored N x K */
    ckg_pack_t(bp, CKG_NR, j->b + j0 * j->K + j->pc, j->K, nr, j->kc);
  else
    ckg_pack_n(bp, CKG_NR, j->b + j->pc * j->N + j0, j->N, nr, j->kc);
}

/* Row tile it (its packed A micro-panel ap) against B micro-panels
 * [jp, jp_end) of the current block. Edge tiles run the same kernel on a
 * padded copy of C, so the arithmetic of every element is the same whichever
 * tile it falls in. */
static void ckg_sweep(const CkgJob *j, int64_t it, int64_t jp, int64_t jp_end, const float *ap,
                      float *tmp) {
  int64_t i0 = it * CKG_MR;
  int mr = (int)(j->M - i0 < CKG_MR ? j->M - i0 : CKG_MR);
  int load = j->load0 || j->pc > 0;
  const int64_t jp0 = jp;
  for (; jp < jp_end; jp++) {
    int64_t j0 = j->jc + jp * CKG_NR;
    int nr = (int)(j->N - j0 < CKG_NR ? j->N - j0 : CKG_NR);
    const float *bp = j->bpack + jp * (j->kc * CKG_NR);
    float *c = j->out + i0 * j->N + j0;
    if (mr == CKG_MR && nr == CKG_NR) {
      /* the kernel prefetches the C tile that comes next: the next panel,
       * or the next row tile's first panel (a hint: another chunk may run it) */
      const float *pf = c;
      if (jp + 1 < jp_end) pf = c + CKG_NR;
      else if (i0 + 2 * CKG_MR <= j->M) pf = c + CKG_MR * j->N - (jp - jp0) * CKG_NR;
      ckg_kernel(j->kc, ap, bp, c, j->N, load, pf);
    } else {
#ifdef CKG_HAS_EDGE
      (void)tmp;
      ckg_kernel_edge(j->kc, ap, bp, c, j->N, load, mr, nr);
#else
      int r, q;
      if (load) {
        for (r = 0; r < CKG_MR; r++)
          for (q = 0; q < CKG_NR; q++)
            tmp[r * CKG_NR + q] = (r < mr && q < nr) ? c[r * j->N + q] : 0.0f;
      }
      ckg_kernel(j->kc, ap, bp, tmp, CKG_NR, load, tmp);
      for (r = 0; r < mr; r++)
        for (q = 0; q < nr; q++) c[r * j->N + q] = tmp[r * CKG_NR + q];
#endif
    }
  }
}

/* Block geometry for (jc, pc) with the columns of the block ending at
 * col_end (a panel boundary, or N). */
static void ckg_block(CkgJob *j, int64_t jc, int64_t col_end, int64_t pc) {
  j->jc = jc;
  j->nc = col_end - jc < CKG_NC ? col_end - jc : CKG_NC;
  j->pc = pc;
  j->kc = j->K - pc < CKG_KC ? j->K - pc : CKG_KC;
  j->npanels = (j->nc + CKG_NR - 1) / CKG_NR;
}

/* The sub-product of row tiles [it0, it1) and columns [col0, col1) on one
 * thread (scratch `slot`): per NC column block and KC k block, pack that B
 * block into the slot (it stays in this core's L2), then sweep each row
 * tile's A micro-panel over it; the A micro-panel comes from j->apack when
 * A was packed up front, else it is packed here into L1. k blocks run in
 * order, so every element is the same fma chain as in any other split. */
static void ckg_rect(CkgJob *j, int64_t it0, int64_t it1, int64_t col0, int64_t col1,
                     float *slot) {
  int64_t jc, pc, jp, it, mtiles = (j->M + CKG_MR - 1) / CKG_MR;
  j->bpack = slot + CKG_A_FLOATS + CKG_T_FLOATS;
  for (jc = col0; jc < col1; jc += CKG_NC)
    for (pc = j->k0; pc < j->k1; pc += CKG_KC) {
      ckg_block(j, jc, col1, pc);
      for (jp = 0; jp < j->npanels; jp++) ckg_pack_b(j->bpack + jp * (j->kc * CKG_NR), j, jp);
      for (it = it0; it < it1; it++) {
        const float *ap = slot;
        if (j->apack) ap = j->apack + (((pc - j->k0) / CKG_KC) * mtiles + it) * CKG_A_FLOATS;
        else ckg_pack_a(slot, j, it);
        ckg_sweep(j, it, 0, j->npanels, ap, slot + CKG_A_FLOATS);
      }
    }
}

/* One product on the calling thread only (scratch slot tid): each row tile's
 * A micro-panel is packed once per block and swept over every B panel. */
static void ckg_one_serial(CkgJob *j, int tid) {
  float *slot = ckg_slot(j, tid);
  if (!slot) { /* out of memory: same numbers, slowly */
    ck_gemm_f32_scalar(j->out, j->a, j->b, 1, j->M, j->N, j->K, j->ta, j->tb, 0, 0,
                       j->load0 ? CK_GEMM_ACCUMULATE : 0);
    return;
  }
  j->apack = NULL;
  j->k0 = 0;
  j->k1 = j->K;
  ckg_rect(j, 0, (j->M + CKG_MR - 1) / CKG_MR, 0, j->N, slot);
}

/* Up-front A packing, one chunk per (k block, row tile) micro-panel of the
 * current k range, into the shared buffer: every column chunk then reads
 * the same packed A instead of packing it again. */
static void ckg_pack_a_chunk(void *ctx, int64_t chunk, int tid) {
  const CkgJob *base = (const CkgJob *)ctx;
  int64_t mtiles = (base->M + CKG_MR - 1) / CKG_MR;
  CkgJob j = *base;
  (void)tid;
  j.pc = j.k0 + (chunk / mtiles) * CKG_KC;
  j.kc = j.K - j.pc < CKG_KC ? j.K - j.pc : CKG_KC;
  ckg_pack_a(j.apack + chunk * CKG_A_FLOATS, &j, chunk % mtiles);
}

/* Compute chunk = one rectangle of the grid: row block chunk % grid_rows,
 * column block chunk / grid_rows. Blocks are near-equal runs of row tiles and
 * of B micro-panels, so every chunk owns whole tiles and packs its own B. */
static void ckg_rect_chunk(void *ctx, int64_t chunk, int tid) {
  const CkgJob *base = (const CkgJob *)ctx;
  CkgJob j = *base;
  int64_t mtiles = (j.M + CKG_MR - 1) / CKG_MR, npan = (j.N + CKG_NR - 1) / CKG_NR;
  int64_t r = chunk % j.grid_rows, c = chunk / j.grid_rows;
  int64_t it0 = r * mtiles / j.grid_rows, it1 = (r + 1) * mtiles / j.grid_rows;
  int64_t col0 = (c * npan / j.grid_cols) * CKG_NR, col1 = ((c + 1) * npan / j.grid_cols) * CKG_NR;
  if (col1 > j.N) col1 = j.N;
  ckg_rect(&j, it0, it1, col0, col1, ckg_slot(&j, tid));
}

/* The chunk grid, from the shape only (never the thread count): the rows x
 * columns factoring, and whether A is packed up front, with the least
 * estimated overhead as a fraction of the product's time. Every chunk packs
 * the B of its columns (CKG_PACK_COST / rows of the chunk) and either packs
 * the A of its rows (CKG_PACK_COST / columns) or reads A packed once up
 * front (CKG_PACK_COST / N, plus CKG_FETCH_COST / micro-panels: each A
 * micro-panel then comes from L2 or the other core and is swept over the
 * chunk's panels only, plus CKG_REGION_WORK per extra parallel region); and
 * the last chunks leave threads idle when threads run at different speeds
 * (another process takes a core): 0.25 / chunks. Counts are even (equal
 * shares for 2 threads), at most CKG_MAX_CHUNKS, with at least
 * CKG_CHUNK_WORK multiply-adds each. Returns 1 to pack A up front. */
static int ckg_grid(CkgJob *j, int64_t passes) {
  int64_t mtiles = (j->M + CKG_MR - 1) / CKG_MR, npan = (j->N + CKG_NR - 1) / CKG_NR;
  int64_t work = j->M * j->N * j->K, most = work / CKG_CHUNK_WORK, want, cb;
  double best = -1.0;
  int shared = 0;
  j->grid_rows = j->grid_cols = 1;
  if (most > CKG_MAX_CHUNKS) most = CKG_MAX_CHUNKS;
  for (want = 2; want <= most; want += 2)
    for (cb = 1; cb <= want; cb++) {
      int64_t rb = want / cb;
      double base, own, up;
      if (want % cb || cb > npan || rb > mtiles) continue;
      base = CKG_PACK_COST * (double)rb / (double)j->M + 0.25 / (double)want;
      own = base + CKG_PACK_COST * (double)cb / (double)j->N;
      up = base + CKG_PACK_COST / (double)j->N + CKG_FETCH_COST * (double)cb / (double)npan +
           (double)(2 * passes - 1) * (double)CKG_REGION_WORK / (double)work;
      if (best < 0.0 || own < best) {
        best = own;
        shared = 0;
        j->grid_cols = cb;
        j->grid_rows = rb;
      }
      if (cb > 1 && up < best) {
        best = up;
        shared = 1;
        j->grid_cols = cb;
        j->grid_rows = rb;
      }
    }
  return shared;
}

/* One product spread over the pool as a grid of rectangles: one parallel
 * region when each chunk packs its own A, else per pass over k (as many k
 * blocks as fit CKG_APACK_BYTES of packed A; one pass for most products) a
 * region that packs A up front and one that computes. Each thread packs the
 * B panels of the chunks it runs into its own slot, so no packed B moves
 * between cores and there is no barrier per k block. */
static void ckg_one_parallel(CkgJob *j) {
  int64_t mtiles = (j->M + CKG_MR - 1) / CKG_MR, kblocks = (j->K + CKG_KC - 1) / CKG_KC;
  int64_t per_pass = (int64_t)(CKG_APACK_BYTES / ((size_t)mtiles * CKG_A_FLOATS * sizeof(float)));
  int t, threads = ck_pool_threads(j->pool), ok = 1;
  for (t = 0; t < threads && ok; t++) /* every slot now, so chunks never see NULL */
    if (!ck_pool_scratch(j->pool, t, CKG_SLOT_BYTES)) ok = 0;
  if (!ok) {
    ckg_one_serial(j, 0);
    return;
  }
  if (per_pass < 1) per_pass = 1;
  if (per_pass > kblocks) per_pass = kblocks;
  j->apack = NULL;
  if (ckg_grid(j, (kblocks + per_pass - 1) / per_pass))
    j->apack = (float *)ck_pool_scratch(
        j->pool, -1, (size_t)(per_pass * mtiles) * CKG_A_FLOATS * sizeof(float));
  if (!j->apack) { /* each chunk packs its A (also when the shared buffer failed) */
    j->k0 = 0;
    j->k1 = j->K;
    ck_pool_parallel_for(j->pool, j->grid_rows * j->grid_cols, ckg_rect_chunk, j);
    return;
  }
  for (j->k0 = 0; j->k0 < j->K; j->k0 = j->k1) {
    j->k1 = j->k0 + per_pass * CKG_KC < j->K ? j->k0 + per_pass * CKG_KC : j->K;
    ck_pool_parallel_for(j->pool, ((j->k1 - j->k0 + CKG_KC - 1) / CKG_KC) * mtiles,
                         ckg_pack_a_chunk, j);
    ck_pool_parallel_for(j->pool, j->grid_rows * j->grid_cols, ckg_rect_chunk, j);
  }
}

/* Zero-size k: the empty sum. */
static void ckg_empty_k(float *out, int64_t batch, int64_t M, int64_t N, int flags) {
  int64_t n = (flags & CK_GEMM_BATCH_SUM) ? M * N : batch * M * N, i;
  if (flags & CK_GEMM_ACCUMULATE) return;
  for (i = 0; i < n; i++) out[i] = 0.0f;
}

/* Batch-parallel path: each chunk is one whole (small) product. */
static void ckg_batch_chunk(void *ctx, int64_t chunk, int tid) {
  const CkgJob *base = (const CkgJob *)ctx;
  CkgJob j = *base;
  j.out = base->out + chunk * base->M * base->N;
  j.a = base->a + chunk * base->a_bstride;
  j.b = base->b + chunk * base->b_bstride;
  ckg_one_serial(&j, tid);
}

void CKG_ENTRY(CkPool *pool, float *out, const float *a, const float *b, int64_t batch, int64_t M,
               int64_t N, int64_t K, int ta, int tb, int64_t a_bstride, int64_t b_bstride,
               int flags) {
  CkgJob j;
  int64_t bi, work;
  int threads = ck_pool_threads(pool);
  if (batch <= 0 || M <= 0 || N <= 0) return;
  if (K <= 0) {
    ckg_empty_k(out, batch, M, N, flags);
    return;
  }
  memset(&j, 0, sizeof j);
  j.pool = pool;
  j.out = out;
  j.a = a;
  j.b = b;
  j.M = M;
  j.N = N;
  j.K = K;
  j.ta = ta;
  j.tb = tb;
  j.load0 = (flags & CK_GEMM_ACCUMULATE) != 0;
  j.a_bstride = a_bstride;
  j.b_bstride = b_bstride;
  j.flags = flags;
  /* A batch of row-major A against one shared B is one tall product. */
  if (batch > 1 && !ta && a_bstride == M * K && b_bstride == 0 && !(flags & CK_GEMM_BATCH_SUM)) {
    j.M = M * batch;
    batch = 1;
  }
  if (!pool) { /* one slot sized to this shape: small products stay off mmap */
    void *mem = NULL;
    int64_t kc = K < CKG_KC ? K : CKG_KC, nc = N < CKG_NC ? N : CKG_NC;
    size_t bfloats = (size_t)(kc * ((nc + CKG_NR - 1) / CKG_NR) * CKG_NR);
    if (posix_memalign(&mem, 64, (CKG_A_FLOATS + CKG_T_FLOATS + bfloats) * sizeof(float)) == 0)
      j.own = (float *)mem;
  }
  work = batch * j.M * N * K;
  if (threads == 1 || work < CKG_SERIAL_WORK) {
    for (bi = 0; bi < batch; bi++) {
      CkgJob item = j;
      item.a = a + bi * a_bstride;
      item.b = b + bi * b_bstride;
      if (flags & CK_GEMM_BATCH_SUM) item.load0 = j.load0 || bi > 0;
      else item.out = out + bi * M * N;
      ckg_one_serial(&item, 0);
    }
  } else if (batch > 1 && !(flags & CK_GEMM_BATCH_SUM) && M * N * K < CKG_SERIAL_WORK * 4) {
    ck_pool_parallel_for(pool, batch, ckg_batch_chunk, &j);
  } else {
    for (bi = 0; bi < batch; bi++) {
      CkgJob item = j;
      item.a = a + bi * a_bstride;
      item.b = b + bi * b_bstride;
      if (flags & CK_GEMM_BATCH_SUM) item.load0 = j.load0 || bi > 0;
      else item.out = out + bi * M * N;
      ckg_one_parallel(&item);
    }
  }
  free(j.own);
}
