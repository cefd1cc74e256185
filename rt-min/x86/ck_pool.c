/* rt-min/x86/ck_pool.c - persistent pthread pool with a deterministic
 * parallel-for (see ck_pool.h). Hosted C99 + POSIX threads; the atomics are
 * the GCC/Clang __atomic builtins (both compilers the x86 targets support). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include "ck_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CK_POOL_RELAX() _mm_pause()
#else
#define CK_POOL_RELAX() ((void)0)
#endif

/* Spins before a parked worker sleeps: long enough to bridge the gap between
 * the parallel regions of one GEMM (microseconds), short enough that an idle
 * pool stops burning a core within about a millisecond. */
#define CK_POOL_SPIN 20000
/* Spins (a pause is 10-40 ns) before the caller of a parallel-for sleeps
 * while chunks claimed by other threads finish. Short on purpose: a chunk
 * still running after this long usually belongs to a worker the kernel
 * preempted (another process shares its core). Spinning or sched_yield keeps
 * the caller's core busy, so the scheduler never moves the preempted worker
 * there; sleeping leaves the core idle and idle balancing pulls the worker
 * over at once. On a loaded machine that wait was most of a 2-thread step. */
#define CK_POOL_WAIT_SPIN 2000
/* A spinning worker yields its core every this many pauses (about a
 * microsecond). When the machine has more runnable threads than cores the
 * scheduler may put a worker on the caller's core; a worker that only spun
 * would take whole time slices from the caller while it has no chunk to run
 * (measured: an empty-ish 2-thread region took 37 us against 20 us on one
 * thread). With nothing else runnable, sched_yield returns at once. */
#define CK_POOL_YIELD_EVERY 64
/* Claims per thread a job is cut into: a thread claims a run of
 * nchunks / (threads * this) consecutive chunks with one compare-and-swap.
 * One chunk per claim made small chunks cost more than they did: the claim
 * word's cache line moves between cores on every claim (about 150 ns in this
 * VM), and a conv's 128 copy chunks of 800 bytes took 22 us on 2 threads
 * against 3.6 us on one. Eight claims each still balance threads that run
 * at different speeds. Who runs a chunk never changes what it computes, so
 * the run length may depend on the thread count. */
#define CK_POOL_CLAIMS_PER_THREAD 8

typedef struct CkPoolWorker {
  CkPool *pool;
  int tid;
} CkPoolWorker;

/* The job state is ONE 64-bit word, [gen:20][nchunks:22][next:22], so a
 * claim is a single compare-and-swap that can only succeed for the job it
 * was meant for: a worker that wakes late (its core was busy with another
 * process) finds a new generation and claims nothing. The caller therefore
 * never waits for threads that did not start; it waits only for chunks that
 * were claimed and are still running. */
#define CK_POOL_FIELD_BITS 22
#define CK_POOL_FIELD_MASK (((uint64_t)1 << CK_POOL_FIELD_BITS) - 1)
#define CK_POOL_MAX_CHUNKS ((int64_t)CK_POOL_FIELD_MASK)
#define CK_POOL_GEN(s) ((s) >> (2 * CK_POOL_FIELD_BITS))
#define CK_POOL_N(s) (((s) >> CK_POOL_FIELD_BITS) & CK_POOL_FIELD_MASK)
#define CK_POOL_NEXT(s) ((s)&CK_POOL_FIELD_MASK)

/* The three words written while a job runs each get a cache line of their
 * own (CK_POOL_LINE bytes of padding between them): `state` (every claim),
 * `done` (every finished run of chunks, polled by the caller) and the job
 * description the chunk bodies read. Sharing one line, each claim evicted
 * the line the caller polls and the one every chunk reads fn and ctx from. */
#define CK_POOL_LINE 64

struct CkPool {
  int nthreads;
  pthread_t *threads;
  CkPoolWorker *workers;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  pthread_cond_t done_cv; /* the caller sleeps here for the last chunks */
  int sleepers;         /* under mu */
  int stop;             /* set with a new generation to end the workers */
  /* the current job, published (release) before the state that names it */
  CkPoolFn fn;
  void *ctx;
  int64_t run;          /* chunks per claim in the current job (atomic) */
  void **scratch;       /* nthreads + 1 slots, the last one shared */
  size_t *scratch_cap;
  char pad0[CK_POOL_LINE];
  uint64_t state;       /* gen | nchunks | next, atomic; written under mu on publish */
  char pad1[CK_POOL_LINE];
  int64_t done;         /* chunks finished in the current job (atomic) */
  int waiting;          /* the caller sleeps on done_cv (seq_cst atomic, set under mu) */
  char pad2[CK_POOL_LINE];
};

/* Environment fallback: explicit count wins so `--threads` overrides CK_THREADS. */
int ck_pool_threads_from_env(int requested) {
  long n = requested;
  if (n <= 0) {
    const char *s = getenv("CK_THREADS");
    char *end = NULL;
    n = 1;
    if (s && *s) {
      long v = strtol(s, &end, 10);
      if (end && *end == '\0' && v > 0) n = v;
    }
  }
  if (n > CK_POOL_MAX_THREADS) n = CK_POOL_MAX_THREADS;
  return (int)n;
}

/* Claim chunks of generation `gen` one at a time: a thread that was
 * descheduled simply claims fewer. Results do not depend on who claims what
 * because chunks write disjoint memory. */
static void ck_pool_run_chunks(CkPool *p, uint64_t gen, int tid) {
  uint64_t s = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
  while (CK_POOL_GEN(s) == gen && CK_POOL_NEXT(s) < CK_POOL_N(s)) {
    uint64_t k = CK_POOL_N(s) - CK_POOL_NEXT(s), c;
    uint64_t run = (uint64_t)__atomic_load_n(&p->run, __ATOMIC_RELAXED); /* ordered by the acquire of s */
    if (k > run) k = run;
    if (__atomic_compare_exchange_n(&p->state, &s, s + k, 1, __ATOMIC_ACQUIRE,
                                    __ATOMIC_ACQUIRE)) {
      for (c = CK_POOL_NEXT(s); c < CK_POOL_NEXT(s) + k; c++) p->fn(p->ctx, (int64_t)c, tid);
      /* seq_cst pairs with the caller's store to `waiting` then load of
       * `done`: either it sees these chunks done or this thread sees it waiting */
      if (__atomic_add_fetch(&p->done, (int64_t)k, __ATOMIC_SEQ_CST) == (int64_t)CK_POOL_N(s) && tid != 0 &&
          __atomic_load_n(&p->waiting, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->done_cv);
        pthread_mutex_unlock(&p->mu);
      }
      s = __atomic_load_n(&p->state, __ATOMIC_ACQUIRE);
    }
  }
}

/* Worker: wait for a new generation (spin, then sleep), claim chunks. */
static void *ck_pool_worker_main(void *arg) {
  CkPoolWorker *w = (CkPoolWorker *)arg;
  CkPool *p = w->pool;
  uint64_t seen = 0;
  for (;;) {
    uint64_t g;
    int spins = 0;
    while ((g = CK_POOL_GEN(__atomic_load_n(&p->state, __ATOMIC_ACQUIRE))) == seen) {
      if (spins < CK_POOL_SPIN) {
        CK_POOL_RELAX();
        if (++spins % CK_POOL_YIELD_EVERY == 0) sched_yield();
        continue;
      }
      pthread_mutex_lock(&p->mu);
      p->sleepers++;
      while (CK_POOL_GEN(__atomic_load_n(&p->state, __ATOMIC_ACQUIRE)) == seen)
        pthread_cond_wait(&p->cv, &p->mu);
      p->sleepers--;
      pthread_mutex_unlock(&p->mu);
    }
    seen = g;
    if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) break;
    ck_pool_run_chunks(p, g, w->tid);
  }
  return NULL;
}

/* A new generation number, written with the job under the mutex. */
static uint64_t ck_pool_publish(CkPool *p, int64_t nchunks) {
  uint64_t g = (CK_POOL_GEN(__atomic_load_n(&p->state, __ATOMIC_RELAXED)) + 1) & (((uint64_t)1 << (64 - 2 * CK_POOL_FIELD_BITS)) - 1);
  if (g == 0) g = 1; /* workers start with seen = 0 */
  __atomic_store_n(&p->state,
                   (g << (2 * CK_POOL_FIELD_BITS)) | ((uint64_t)nchunks << CK_POOL_FIELD_BITS),
                   __ATOMIC_RELEASE);
  return g;
}

int ck_pool_threads(const CkPool *pool) { return pool ? pool->nthreads : 1; }

/* Workers are started last so a failed allocation never leaves threads behind;
 * a failed pthread_create shrinks the pool to the threads that did start. */
CkPool *ck_pool_create(int nthreads) {
  CkPool *p;
  int i;
  if (nthreads <= 0) nthreads = ck_pool_threads_from_env(0);
  if (nthreads > CK_POOL_MAX_THREADS) nthreads = CK_POOL_MAX_THREADS;
  p = (CkPool *)calloc(1, sizeof *p);
  if (!p) return NULL;
  p->threads = (pthread_t *)calloc((size_t)nthreads, sizeof *p->threads);
  p->workers = (CkPoolWorker *)calloc((size_t)nthreads, sizeof *p->workers);
  p->scratch = (void **)calloc((size_t)nthreads + 1, sizeof *p->scratch);
  p->scratch_cap = (size_t *)calloc((size_t)nthreads + 1, sizeof *p->scratch_cap);
  if (!p->threads || !p->workers || !p->scratch || !p->scratch_cap) {
    free(p->threads);
    free(p->workers);
    free(p->scratch);
    free(p->scratch_cap);
    free(p);
    return NULL;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  pthread_cond_init(&p->done_cv, NULL);
  p->nthreads = 1;
  for (i = 1; i < nthreads; i++) {
    p->workers[i].pool = p;
    p->workers[i].tid = i;
    if (pthread_create(&p->threads[i], NULL, ck_pool_worker_main, &p->workers[i]) != 0) break;
    p->nthreads = i + 1;
  }
  return p;
}

void ck_pool_destroy(CkPool *pool) {
  int i;
  if (!pool) return;
  pthread_mutex_lock(&pool->mu);
  __atomic_store_n(&pool->stop, 1, __ATOMIC_RELEASE);
  ck_pool_publish(pool, 0);
  pthread_cond_broadcast(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
  for (i = 1; i < pool->nthreads; i++) pthread_join(pool->threads[i], NULL);
  for (i = 0; i <= pool->nthreads; i++) free(pool->scratch[i]);
  pthread_mutex_destroy(&pool->mu);
  pthread_cond_destroy(&pool->cv);
  pthread_cond_destroy(&pool->done_cv);
  free(pool->threads);
  free(pool->workers);
  free(pool->scratch);
  free(pool->scratch_cap);
  free(pool);
}

/* Publish the job under the mutex (so a worker about to sleep cannot miss the
 * new generation), claim chunks on the caller too, then wait only for chunks
 * still running elsewhere. More chunks than the state word holds run as
 * consecutive jobs over sub-ranges (a shape-only split). */
typedef struct CkPoolRange {
  CkPoolFn fn;
  void *ctx;
  int64_t base;
} CkPoolRange;

static void ck_pool_range_fn(void *ctx, int64_t chunk, int tid) {
  const CkPoolRange *r = (const CkPoolRange *)ctx;
  r->fn(r->ctx, r->base + chunk, tid);
}

void ck_pool_parallel_for(CkPool *pool, int64_t nchunks, CkPoolFn fn, void *ctx) {
  int64_t c, run;
  uint64_t g;
  int spins = 0;
  if (nchunks <= 0) return;
  if (!pool || pool->nthreads == 1 || nchunks == 1) {
    for (c = 0; c < nchunks; c++) fn(ctx, c, 0);
    return;
  }
  if (nchunks > CK_POOL_MAX_CHUNKS) {
    CkPoolRange r;
    r.fn = fn;
    r.ctx = ctx;
    for (r.base = 0; r.base < nchunks; r.base += CK_POOL_MAX_CHUNKS)
      ck_pool_parallel_for(pool,
                           nchunks - r.base < CK_POOL_MAX_CHUNKS ? nchunks - r.base
                                                                 : CK_POOL_MAX_CHUNKS,
                           ck_pool_range_fn, &r);
    return;
  }
  pthread_mutex_lock(&pool->mu);
  pool->fn = fn;
  pool->ctx = ctx;
  run = nchunks / ((int64_t)pool->nthreads * CK_POOL_CLAIMS_PER_THREAD);
  __atomic_store_n(&pool->run, run < 1 ? 1 : run, __ATOMIC_RELAXED); /* published by the state's release */
  __atomic_store_n(&pool->done, 0, __ATOMIC_RELAXED);
  g = ck_pool_publish(pool, nchunks);
  if (pool->sleepers > 0) pthread_cond_broadcast(&pool->cv);
  pthread_mutex_unlock(&pool->mu);
  ck_pool_run_chunks(pool, g, 0);
  while (__atomic_load_n(&pool->done, __ATOMIC_ACQUIRE) < nchunks) {
    if (++spins < CK_POOL_WAIT_SPIN) {
      CK_POOL_RELAX();
      continue;
    }
    /* a claimer is slow, likely preempted: sleep so our core can take it */
    pthread_mutex_lock(&pool->mu);
    __atomic_store_n(&pool->waiting, 1, __ATOMIC_SEQ_CST);
    while (__atomic_load_n(&pool->done, __ATOMIC_SEQ_CST) < nchunks)
      pthread_cond_wait(&pool->done_cv, &pool->mu);
    __atomic_store_n(&pool->waiting, 0, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&pool->mu);
  }
}

/* Grow-only buffers: a GEMM asks for the same sizes call after call, so after
 * the first call no memory is allocated (page faults are costly in VMs). */
void *ck_pool_scratch(CkPool *pool, int tid, size_t bytes) {
  int slot;
  if (!pool) return NULL;
  slot = tid < 0 ? pool->nthreads : tid;
  if (slot > pool->nthreads) return NULL;
  if (bytes > pool->scratch_cap[slot] || !pool->scratch[slot]) {
    void *mem = NULL;
    size_t cap = bytes < 4096 ? 4096 : bytes;
    if (posix_memalign(&mem, 64, cap) != 0) return NULL;
    free(pool->scratch[slot]);
    pool->scratch[slot] = mem;
    pool->scratch_cap[slot] = cap;
  }
  return pool->scratch[slot];
}
