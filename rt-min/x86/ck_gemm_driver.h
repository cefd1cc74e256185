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
 * and vectors run along N):
 *   jc over N by CKG_NC      B block (CKG_KC x CKG_NC, packed, shared) in L2
 *     pc over K by CKG_KC    k blocks in order: the fma chain continues via C
 *       one thread: pack the B block, then for each MR-row tile pack its A
 *                   micro-panel (CKG_MR x CKG_KC, stays in L1) once and
 *                   sweep every B micro-panel
 *       pool: parallel: pack the B micro-panels (and, when a row tile is
 *                       split over several chunks, the A block, so no row
 *                       tile is packed twice)
 *             parallel: chunk = (MR-row tile, group of micro-panels)
 * Chunks depend on the shape only, and k is never split, so any thread count
 * computes the same bits. */
#ifndef CKG_MR
#error "define CKG_MR, CKG_NR, CKG_KC, CKG_NC, CKG_ENTRY and ckg_kernel first"
#endif

#include <stdlib.h>
#include <string.h>

/* Floats of per-thread scratch: A micro-panel, an edge tile, and a private B
 * block for the batch-parallel path (where each thread runs whole GEMMs). */
#define CKG_A_FLOATS ((size_t)CKG_MR * CKG_KC)
#define CKG_T_FLOATS ((size_t)CKG_MR * CKG_NR)
#define CKG_B_FLOATS ((size_t)CKG_KC * CKG_NC)
#define CKG_SLOT_BYTES ((CKG_A_FLOATS + CKG_T_FLOATS + CKG_B_FLOATS) * sizeof(float))
/* Work (multiply-adds) below which threads cost more than they save. */
#define CKG_SERIAL_WORK ((int64_t)1 << 20)
/* Chunks wanted per parallel region, for load balance at any thread count. */
#define CKG_MIN_CHUNKS 32

typedef struct CkgJob {
  CkPool *pool;
  float *out;
  const float *a, *b;
  int64_t M, N, K;
  int ta, tb;
  int load0;        /* the first k block continues from out (accumulate) */
  int64_t jc, nc, pc, kc;
  int64_t npanels;  /* micro-panels in the current B block */
  int64_t ngroups, group; /* micro-panels split into ngroups groups of `group` */
  float *bpack;     /* packed B block being swept */
  float *apack;     /* shared packed A block (several chunks per row tile), or NULL */
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

/* Pack region chunk: B micro-panels first, then (when row tiles are swept
 * by several chunks) the A micro-panels into the shared A block. */
static void ckg_pack_chunk(void *ctx, int64_t chunk, int tid) {
  CkgJob *j = (CkgJob *)ctx;
  (void)tid;
  if (chunk < j->npanels)
    ckg_pack_b(j->bpack + chunk * (j->kc * CKG_NR), j, chunk);
  else
    ckg_pack_a(j->apack + (chunk - j->npanels) * CKG_A_FLOATS, j, chunk - j->npanels);
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

/* Compute region chunk = (row tile, group of B micro-panels). With one group
 * per row tile the chunk packs its own A micro-panel (into L1, used once);
 * with several, the pack region already packed it into the shared A block,
 * so no row tile is packed twice. */
static void ckg_compute_chunk(void *ctx, int64_t chunk, int tid) {
  CkgJob *j = (CkgJob *)ctx;
  int64_t it = chunk / j->ngroups, g = chunk % j->ngroups;
  int64_t jp = g * j->group, jp_end = jp + j->group < j->npanels ? jp + j->group : j->npanels;
  float *slot = ckg_slot(j, tid);
  const float *ap = slot;
  if (j->apack) ap = j->apack + it * CKG_A_FLOATS;
  else ckg_pack_a(slot, j, it);
  ckg_sweep(j, it, jp, jp_end, ap, slot + CKG_A_FLOATS);
}

/* Block geometry for (jc, pc): how many micro-panels, and how to group them
 * so small-M products still give every thread work. Shape-only. */
static void ckg_block(CkgJob *j, int64_t jc, int64_t pc) {
  int64_t mtiles = (j->M + CKG_MR - 1) / CKG_MR;
  j->jc = jc;
  j->nc = j->N - jc < CKG_NC ? j->N - jc : CKG_NC;
  j->pc = pc;
  j->kc = j->K - pc < CKG_KC ? j->K - pc : CKG_KC;
  j->npanels = (j->nc + CKG_NR - 1) / CKG_NR;
  j->ngroups = 1;
  if (mtiles < CKG_MIN_CHUNKS) {
    j->ngroups = (CKG_MIN_CHUNKS + mtiles - 1) / mtiles;
    if (j->ngroups > j->npanels) j->ngroups = j->npanels;
  }
  j->group = (j->npanels + j->ngroups - 1) / j->ngroups;
  j->ngroups = (j->npanels + j->group - 1) / j->group;
}

/* One product on the calling thread only (scratch slot tid): each row tile's
 * A micro-panel is packed once per block and swept over every B panel. */
static void ckg_one_serial(CkgJob *j, int tid) {
  int64_t jc, pc, jp, it, mtiles = (j->M + CKG_MR - 1) / CKG_MR;
  float *slot = ckg_slot(j, tid);
  if (!slot) { /* out of memory: same numbers, slowly */
    ck_gemm_f32_scalar(j->out, j->a, j->b, 1, j->M, j->N, j->K, j->ta, j->tb, 0, 0,
                       j->load0 ? CK_GEMM_ACCUMULATE : 0);
    return;
  }
  j->bpack = slot + CKG_A_FLOATS + CKG_T_FLOATS;
  for (jc = 0; jc < j->N; jc += CKG_NC)
    for (pc = 0; pc < j->K; pc += CKG_KC) {
      ckg_block(j, jc, pc);
      for (jp = 0; jp < j->npanels; jp++) ckg_pack_b(j->bpack + jp * (j->kc * CKG_NR), j, jp);
      for (it = 0; it < mtiles; it++) {
        ckg_pack_a(slot, j, it);
        ckg_sweep(j, it, 0, j->npanels, slot, slot + CKG_A_FLOATS);
      }
    }
}

/* One product spread over the pool: two parallel regions per block (pack,
 * then compute). The shared buffer holds the B block and, for products with
 * fewer than CKG_MIN_CHUNKS row tiles, the A block. */
static void ckg_one_parallel(CkgJob *j) {
  int64_t jc, pc, mtiles = (j->M + CKG_MR - 1) / CKG_MR;
  int t, threads = ck_pool_threads(j->pool);
  float *shared = (float *)ck_pool_scratch(
      j->pool, -1, (CKG_B_FLOATS + (size_t)CKG_MIN_CHUNKS * CKG_A_FLOATS) * sizeof(float));
  for (t = 0; t < threads && shared; t++) /* every slot now, so chunks never see NULL */
    if (!ck_pool_scratch(j->pool, t, CKG_SLOT_BYTES)) shared = NULL;
  if (!shared) {
    ckg_one_serial(j, 0);
    return;
  }
  j->bpack = shared;
  for (jc = 0; jc < j->N; jc += CKG_NC)
    for (pc = 0; pc < j->K; pc += CKG_KC) {
      ckg_block(j, jc, pc);
      j->apack = j->ngroups > 1 ? shared + CKG_B_FLOATS : NULL;
      ck_pool_parallel_for(j->pool, j->npanels + (j->apack ? mtiles : 0), ckg_pack_chunk, j);
      ck_pool_parallel_for(j->pool, mtiles * j->ngroups, ckg_compute_chunk, j);
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
