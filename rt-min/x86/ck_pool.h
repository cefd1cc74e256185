/* rt-min/x86/ck_pool.h - persistent, deterministic pthread pool (hosted C99).
 *
 * One pool per program: threads are created once and parked between jobs
 * (spin briefly, then sleep on a condition variable), so a kernel call costs a
 * wake-up, not a pthread_create. The only parallel construct is a parallel-for
 * over `nchunks` chunks: the caller chooses the chunks from the problem size
 * alone, never from the thread count, and each chunk writes memory no other
 * chunk touches. Which thread runs which chunk may vary from run to run; the
 * results cannot, so every thread count gives bitwise identical output.
 * No OpenMP: the pool is the only source of threads inside kernels. */
#ifndef CK_POOL_H
#define CK_POOL_H

#include <stddef.h>
#include <stdint.h>

typedef struct CkPool CkPool;

/* A chunk body: ctx is the caller's, chunk in [0, nchunks), tid in
 * [0, threads) names the thread running it (for per-thread scratch only). */
typedef void (*CkPoolFn)(void *ctx, int64_t chunk, int tid);

/* Thread count to use: `requested` if > 0 (the --threads N option), else the
 * CK_THREADS environment variable if it holds a positive integer, else 1.
 * Clamped to [1, CK_POOL_MAX_THREADS]. */
#define CK_POOL_MAX_THREADS 256
int ck_pool_threads_from_env(int requested);

/* Starts nthreads - 1 workers (the caller is thread 0). nthreads <= 0 means
 * ck_pool_threads_from_env(0). Returns NULL if memory or threads run out. */
CkPool *ck_pool_create(int nthreads);
/* Stops and joins the workers, frees scratch. NULL is a no-op. */
void ck_pool_destroy(CkPool *pool);
int ck_pool_threads(const CkPool *pool); /* 1 for a NULL pool */

/* Runs fn(ctx, c, tid) for every c in [0, nchunks) and returns when all are
 * done. A NULL pool, one thread, or nchunks == 1 runs inline on the caller.
 * Not reentrant: a chunk body must not call ck_pool_parallel_for. */
void ck_pool_parallel_for(CkPool *pool, int64_t nchunks, CkPoolFn fn, void *ctx);

/* Per-thread scratch, 64-byte aligned, kept between calls and grown on
 * demand: slot tid in [0, threads) belongs to that thread (call it only from
 * that thread's chunk bodies, or from the caller outside a parallel-for);
 * slot -1 is a shared buffer the caller sizes before a parallel-for.
 * Returns NULL when memory runs out (or pool is NULL). */
void *ck_pool_scratch(CkPool *pool, int tid, size_t bytes);

#endif
