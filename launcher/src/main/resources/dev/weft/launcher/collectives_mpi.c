/*
 * The Open MPI side of `weft bench collectives`: the same cases timed the same way as weft's ranks
 * (CollectivesBenchCommand.Rank), so that the two columns compare like with like. Compiled with
 * mpicc at bench time and run under mpirun.
 *
 *   collectives_mpi MIN MAX MIN_TIME sync|async
 *
 * sync:  all-reduce (in place), reduce-scatter (MPI_Reduce_scatter_block), all-gather and a
 *        send-recv ping-pong between ranks 0 and 1 (one-way time), float sum. Prints
 *        "CASE op bytes seconds": the median over BATCHES batches of the slowest rank's time per op.
 * async: the non-blocking forms issued, a compute loop (64x64x64 GEMMs, one per 16 KiB) run, then
 *        MPI_Wait, as ZeRO and DDP overlap them. Prints "CASE op bytes alone compute exposed"
 *        (seconds): batches that time compute alone and then compute beside the operation; exposed
 *        is a batch's difference; medians over batches of the slowest rank.
 * Last, rank 0 prints "MEM rss_bytes shm_bytes": its resident set and the bytes of Open MPI's
 * shared-memory segments in /dev/shm.
 */
#include <mpi.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCHES 9
enum { ALL_REDUCE, REDUCE_SCATTER, ALL_GATHER, SEND_RECV, OPS };
static const char *NAMES[] = {"all-reduce", "reduce-scatter", "all-gather", "send-recv"};
static int rank, size;
static float *a, *b, *ga, *gb, *gc;
static int gemms;
static void just_compute(void);

static void op(int which, int numel, int async, int compute) {
    MPI_Request req = MPI_REQUEST_NULL;
    int block = numel / size;
    switch (which) {
    case ALL_REDUCE: MPI_Iallreduce(MPI_IN_PLACE, a, numel, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req); break;
    case REDUCE_SCATTER: MPI_Ireduce_scatter_block(a, b, block, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req); break;
    case ALL_GATHER: MPI_Iallgather(b, block, MPI_FLOAT, a, block, MPI_FLOAT, MPI_COMM_WORLD, &req); break;
    case SEND_RECV:
        if (rank == 0) {
            MPI_Send(a, numel, MPI_FLOAT, 1, 0, MPI_COMM_WORLD);
            MPI_Recv(a, numel, MPI_FLOAT, 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
            MPI_Recv(a, numel, MPI_FLOAT, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(a, numel, MPI_FLOAT, 0, 0, MPI_COMM_WORLD);
        }
        return;
    }
    (void) async;
    if (compute) {
        just_compute();
    }
    MPI_Wait(&req, MPI_STATUS_IGNORE);
}

static void just_compute(void) {
    /* 64x64x64 GEMMs, i-k-j so the compiler vectorises the inner loop */
    for (int g = 0; g < gemms; g++)
        for (int i = 0; i < 64; i++)
            for (int k = 0; k < 64; k++) {
                float x = ga[i * 64 + k];
                for (int j = 0; j < 64; j++) gc[i * 64 + j] += x * gb[k * 64 + j];
            }
}

/* mode 0: the op alone, 1: compute alone, 2: op issued, compute, wait */
static void body(int which, int numel, int mode) {
    if (mode == 1) just_compute();
    else op(which, numel, 1, mode == 2);
}

static int cmp(const void *x, const void *y) {
    double d = *(const double *) x - *(const double *) y;
    return d < 0 ? -1 : d > 0;
}

/* Seconds per run: warmed up, the count agreed from rank 0, median over batches of the slowest rank. */
static double timed(int which, int numel, int mode, double min_time) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    body(which, numel, mode);
    double one = MPI_Wtime() - t0;
    int iters = (int) (min_time / (one > 1e-7 ? one : 1e-7));
    if (iters < BATCHES * 3) iters = BATCHES * 3;
    if (iters > 200000) iters = 200000;
    MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
    int per = iters / BATCHES;
    MPI_Barrier(MPI_COMM_WORLD);
    for (int i = 0; i < iters / 2 + 20; i++) body(which, numel, mode); /* warm-up */
    double mine[BATCHES], slowest[BATCHES];
    for (int bt = 0; bt < BATCHES; bt++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t = MPI_Wtime();
        for (int i = 0; i < per; i++) body(which, numel, mode);
        mine[bt] = (MPI_Wtime() - t) / per;
    }
    MPI_Allreduce(mine, slowest, BATCHES, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    qsort(slowest, BATCHES, sizeof(double), cmp);
    return slowest[BATCHES / 2] / (which == SEND_RECV && mode == 0 ? 2 : 1);
}

/* {compute, exposed}: see the header; the Java side's CollectivesBenchCommand.Rank.exposed. */
static void exposed(int which, int numel, double min_time, double *compute, double *exp) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    body(which, numel, 2);
    double one = MPI_Wtime() - t0;
    for (int i = 0; i < 4; i++) {
        t0 = MPI_Wtime();
        body(which, numel, 2);
        double t = MPI_Wtime() - t0;
        if (t < one) one = t;
    }
    int iters = (int) (min_time / 2 / (one > 1e-7 ? one : 1e-7));
    if (iters > 200000) iters = 200000;
    MPI_Bcast(&iters, 1, MPI_INT, 0, MPI_COMM_WORLD);
    for (int i = 0; i < iters + 20; i++) body(which, numel, 2); /* warm-up */
    int per = iters / BATCHES < 3 ? 3 : iters / BATCHES;
    double c[BATCHES], e[BATCHES], sc[BATCHES], se[BATCHES];
    for (int bt = 0; bt < BATCHES; bt++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double a = MPI_Wtime();
        for (int i = 0; i < per; i++) body(which, numel, 1);
        double b = MPI_Wtime();
        MPI_Barrier(MPI_COMM_WORLD);
        double d = MPI_Wtime();
        for (int i = 0; i < per; i++) body(which, numel, 2);
        double f = MPI_Wtime();
        c[bt] = (b - a) / per;
        e[bt] = ((f - d) - (b - a)) / per;
    }
    MPI_Allreduce(c, sc, BATCHES, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(e, se, BATCHES, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    qsort(sc, BATCHES, sizeof(double), cmp);
    qsort(se, BATCHES, sizeof(double), cmp);
    *compute = sc[BATCHES / 2];
    *exp = se[BATCHES / 2];
}

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof line, f)) if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    if (f) fclose(f);
    return kb * 1024;
}

static long shm_bytes(void) {
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    long sum = 0;
    char path[512];
    struct stat st;
    while (d && (e = readdir(d)))
        if (strstr(e->d_name, "vader") || strstr(e->d_name, "sm_segment")) {
            snprintf(path, sizeof path, "/dev/shm/%s", e->d_name);
            if (stat(path, &st) == 0 && st.st_uid == getuid()) sum += (long) st.st_blocks * 512;
        }
    if (d) closedir(d);
    return sum;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    if (argc < 5) {
        if (rank == 0) fprintf(stderr, "usage: %s MIN MAX MIN_TIME sync|async\n", argv[0]);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    long min = atol(argv[1]), max = atol(argv[2]);
    double min_time = atof(argv[3]);
    int async = strcmp(argv[4], "async") == 0;
    a = malloc(max + 64);
    b = malloc(max + 64);
    ga = malloc(256 * 256 * 4);
    gb = malloc(256 * 256 * 4);
    gc = calloc(256 * 256, 4);
    for (long i = 0; i < max / 4; i++) a[i] = b[i] = 1.0f + rank;
    for (int i = 0; i < 256 * 256; i++) ga[i] = 0.5f, gb[i] = 0.25f;
    for (long s = min; s <= max; s *= 4) {
        int numel = (int) (s / 4 / size * size);
        if (numel < size) numel = size;
        gemms = (int) (s >> 14) > 0 ? (int) (s >> 14) : 1;
        for (int w = 0; w < OPS; w++) {
            if (!async) {
                if (w == SEND_RECV && size < 2) continue;
                double t = timed(w, numel, 0, min_time);
                if (rank == 0) printf("CASE %s %ld %.9g\n", NAMES[w], (long) numel * 4, t);
            } else {
                if (w == SEND_RECV) continue;
                double alone = timed(w, numel, 0, min_time), compute, exp;
                exposed(w, numel, min_time, &compute, &exp);
                if (rank == 0) printf("CASE %s %ld %.9g %.9g %.9g\n", NAMES[w], (long) numel * 4, alone, compute, exp);
            }
            fflush(stdout);
        }
    }
    long shm = shm_bytes(), rss = rss_bytes();
    if (rank == 0) printf("MEM %ld %ld\n", rss, shm);
    fflush(stdout);
    MPI_Finalize();
    return 0;
}
