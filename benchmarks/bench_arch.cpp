// Minimal benchmark architecture for the Faust compiler's C++ (faust -double -a bench_arch.cpp).
// usage: PROGRAM [SAMPLES [BLOCK [REPEATS]]]
// Renders SAMPLES samples (default 2205000) with zero inputs by calls of compute() on BLOCK
// samples (default 256), REPEATS times (default 3, state cleared between), and prints
// "<best CPU seconds> <best wall seconds> <sum of output 0 over the last render>" (CPU time:
// the process's own, which a busy machine disturbs less than the wall clock).
#ifndef FAUSTFLOAT
#define FAUSTFLOAT double
#endif
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <vector>

#include "faust/dsp/dsp.h"
#include "faust/gui/UI.h"
#include "faust/gui/meta.h"

<<includeIntrinsic>>

<<includeclass>>

int main(int argc, char* argv[]) {
    long total = argc > 1 ? atol(argv[1]) : 2205000;
    int block = argc > 2 ? atoi(argv[2]) : 256;
    int repeats = argc > 3 ? atoi(argv[3]) : 3;
    mydsp d;
    d.init(44100);
    int nin = d.getNumInputs(), nout = d.getNumOutputs();
    std::vector<std::vector<FAUSTFLOAT>> ibuf(nin, std::vector<FAUSTFLOAT>(block, 0.0));
    std::vector<std::vector<FAUSTFLOAT>> obuf(nout, std::vector<FAUSTFLOAT>(block, 0.0));
    std::vector<FAUSTFLOAT*> ins(nin + 1), outs(nout + 1);
    for (int c = 0; c < nin; c++) ins[c] = ibuf[c].data();
    for (int c = 0; c < nout; c++) outs[c] = obuf[c].data();
    double best = 1e300, best_cpu = 1e300, sum = 0;
    for (int r = 0; r < repeats; r++) {
        d.instanceClear();
        sum = 0;
        timespec c0, c1;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
        auto t0 = std::chrono::steady_clock::now();
        for (long s = 0; s < total; s += block) {
            int n = (int)std::min<long>(block, total - s);
            d.compute(n, ins.data(), outs.data());
            for (int i = 0; i < n; i++) sum += obuf[0][i];
        }
        auto t1 = std::chrono::steady_clock::now();
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
        best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
        best_cpu = std::min(best_cpu, (c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec));
    }
    printf("%.9f %.9f %.17g\n", best_cpu, best, sum);
    return 0;
}
