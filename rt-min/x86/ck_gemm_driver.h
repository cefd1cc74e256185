/* rt-min/x86/ck_gemm_driver.h - the blocking, packing and threading shared by
 * the AVX2 and AVX-512 GEMMs. Not a public header: each ISA file defines
 *   CKG_MR, CKG_NR   micro-tile (rows broadcast from packed A, columns as
 *                    vectors of packed B), CKG_KC, CKG_NC  cache blocks,
 *   CKG_ENTRY        the name of the public entry point to define, and
 *   static void ckg_kernel(int64_t kc, const float *ap, const float *bp,
 *                          float *c, int64_t ldc, int load_c)
 * (one full CKG_MR x CKG_NR tile: c = (load_c ? c : 0) + ap-panel @ bp-panel
 * as per-element fma chains in k order), then includes this file once.
 *
 * Loop nest (BLIS's, with the roles of A and B swapped because C is row-major
 * and vectors run along N):
 *   jc over N by CKG_NC      B block (CKG_KC x CKG_NC, packed, shared) in L2
 *     pc over K by CKG_KC    k blocks in order: the fma chain continues via C
 *       parallel: pack the B block's CKG_NR-wide micro-panels
 *       parallel: chunk = (MR-row tile, group of micro-panels): pack the A
 *                 micro-panel (CKG_MR x CKG_KC, stays in L1), sweep the group
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
  float *own;       /* scratch when pool is NULL: one slot */
  /* batch-parallel path */
  int64_t a_bstride, b_bstride;
  int flags;
} CkgJob;

static float *ckg_slot(CkgJob *j, int tid) {
  return j->pool ? (float *)ck_pool_scratch(j->pool, tid, CKG_SLOT_BYTES) : j->own;
}

/* A micro-panel: ap[k*MR + r] = opA[i0 + r, p0 + k], rows past mr are zero so
 * the kernel can always run a full tile (the padding never reaches out). */
static void ckg_pack_a(float *ap, const CkgJob *j, int64_t i0, int mr) {
  int64_t k, kc = j->kc, p0 = j->pc;
  int r;
  if (j->ta) { /* A stored K x M: a row of the panel is contiguous */
    for (k = 0; k < kc; k++) {
      const float *src = j->a + (p0 + k) * j->M + i0;
      float *dst = ap + k * CKG_MR;
      for (r = 0; r < mr; r++) dst[r] = src[r];
      for (; r < CKG_MR; r++) dst[r] = 0.0f;
    }
    return;
  }
  for (r = 0; r < mr; r++) {
    const float *src = j->a + (i0 + r) * j->K + p0;
    for (k = 0; k < kc; k++) ap[k * CKG_MR + r] = src[k];
  }
  for (; r < CKG_MR; r++)
    for (k = 0; k < kc; k++) ap[k * CKG_MR + r] = 0.0f;
}

/* B micro-panel jp of the current block: bp[k*NR + c] = opB[p0 + k, j0 + c],
 * columns past the matrix edge are zero. */
static void ckg_pack_b(float *bp, const CkgJob *j, int64_t jp) {
  int64_t k, kc = j->kc, p0 = j->pc, j0 = j->jc + jp * CKG_NR;
  int64_t nr = j->N - j0 < CKG_NR ? j->N - j0 : CKG_NR;
  int c;
  if (!j->tb) { /* B stored K x N: rows of the panel are contiguous */
    for (k = 0; k < kc; k++) {
      const float *src = j->b + (p0 + k) * j->N + j0;
      float *dst = bp + k * CKG_NR;
      if (nr == CKG_NR) {
        memcpy(dst, src, CKG_NR * sizeof(float));
      } else {
        for (c = 0; c < nr; c++) dst[c] = src[c];
        for (; c < CKG_NR; c++) dst[c] = 0.0f;
      }
    }
    return;
  }
  /* B stored N x K: walk four columns at a time so each source row streams. */
  for (c = 0; c + 4 <= nr; c += 4) {
    const float *s0 = j->b + (j0 + c) * j->K + p0, *s1 = s0 + j->K, *s2 = s1 + j->K,
                *s3 = s2 + j->K;
    float *dst = bp + c;
    for (k = 0; k < kc; k++) {
      dst[k * CKG_NR + 0] = s0[k];
      dst[k * CKG_NR + 1] = s1[k];
      dst[k * CKG_NR + 2] = s2[k];
      dst[k * CKG_NR + 3] = s3[k];
    }
  }
  for (; c < nr; c++) {
    const float *src = j->b + (j0 + c) * j->K + p0;
    for (k = 0; k < kc; k++) bp[k * CKG_NR + c] = src[k];
  }
  for (; c < CKG_NR; c++)
    for (k = 0; k < kc; k++) bp[k * CKG_NR + c] = 0.0f;
}

static void ckg_pack_b_chunk(void *ctx, int64_t chunk, int tid) {
  CkgJob *j = (CkgJob *)ctx;
  (void)tid;
  ckg_pack_b(j->bpack + chunk * (j->kc * CKG_NR), j, chunk);
}

/* One chunk: the A micro-panel of one MR-row tile against one group of B
 * micro-panels. Edge tiles run the same kernel on a padded copy of C, so the
 * arithmetic of every element is the same whichever tile it falls in. */
static void ckg_compute(CkgJob *j, int64_t chunk, float *slot) {
  int64_t it = chunk / j->ngroups, g = chunk % j->ngroups;
  int64_t i0 = it * CKG_MR, jp, jp_end;
  int mr = (int)(j->M - i0 < CKG_MR ? j->M - i0 : CKG_MR);
  int load = j->load0 || j->pc > 0;
  float *ap = slot, *tmp = slot + CKG_A_FLOATS;
  ckg_pack_a(ap, j, i0, mr);
  jp = g * j->group;
  jp_end = jp + j->group < j->npanels ? jp + j->group : j->npanels;
  for (; jp < jp_end; jp++) {
    int64_t j0 = j->jc + jp * CKG_NR;
    int nr = (int)(j->N - j0 < CKG_NR ? j->N - j0 : CKG_NR);
    const float *bp = j->bpack + jp * (j->kc * CKG_NR);
    float *c = j->out + i0 * j->N + j0;
    if (jp + 1 < jp_end) { /* the next tile's C rows, so its loads do not stall the FMAs */
      int r;
      for (r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(c + CKG_NR + r * j->N), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + CKG_NR + r * j->N + CKG_NR - 1), _MM_HINT_T0);
      }
    }
    if (mr == CKG_MR && nr == CKG_NR) {
      ckg_kernel(j->kc, ap, bp, c, j->N, load);
    } else {
      int r, q;
      if (load) {
        for (r = 0; r < CKG_MR; r++)
          for (q = 0; q < CKG_NR; q++)
            tmp[r * CKG_NR + q] = (r < mr && q < nr) ? c[r * j->N + q] : 0.0f;
      }
      ckg_kernel(j->kc, ap, bp, tmp, CKG_NR, load);
      for (r = 0; r < mr; r++)
        for (q = 0; q < nr; q++) c[r * j->N + q] = tmp[r * CKG_NR + q];
    }
  }
}

static void ckg_compute_chunk(void *ctx, int64_t chunk, int tid) {
  CkgJob *j = (CkgJob *)ctx;
  ckg_compute(j, chunk, ckg_slot(j, tid));
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

/* One product on the calling thread only (scratch slot tid). */
static void ckg_one_serial(CkgJob *j, int tid) {
  int64_t jc, pc, jp, ch;
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
      for (ch = 0; ch < ((j->M + CKG_MR - 1) / CKG_MR) * j->ngroups; ch++) ckg_compute(j, ch, slot);
    }
}

/* One product spread over the pool: two parallel regions per block. */
static void ckg_one_parallel(CkgJob *j) {
  int64_t jc, pc;
  j->bpack = (float *)ck_pool_scratch(j->pool, -1, CKG_B_FLOATS * sizeof(float));
  if (!j->bpack) {
    ckg_one_serial(j, 0);
    return;
  }
  for (jc = 0; jc < j->N; jc += CKG_NC)
    for (pc = 0; pc < j->K; pc += CKG_KC) {
      ckg_block(j, jc, pc);
      ck_pool_parallel_for(j->pool, j->npanels, ckg_pack_b_chunk, j);
      ck_pool_parallel_for(j->pool, ((j->M + CKG_MR - 1) / CKG_MR) * j->ngroups,
                           ckg_compute_chunk, j);
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
