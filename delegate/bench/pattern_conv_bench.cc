// Speed of the pattern-convolution kernels on layer shapes from real models,
// as GFLOP/s on kept MACs and as a share of this CPU's measured FMA peak.
//
//   make bench-kernels
//   out/pattern_conv_bench [--threads N] [--removed 0.72] [--pool 8] [--group 1]
//                          [--repeats 20] [--rows-chunk-bytes 16384]
//                          [--target AVX2] [--layer SIZE,IN,OUT,STRIDE ...]
//
// Weights are free per-kernel 4-of-9 patterns from a pool (`--pool`), a
// fraction `--removed` of kernels removed; `--group N` gives N consecutive
// output channels one pattern and one removal per input channel (the
// co-design grouping). Inputs are unit-scale, so no denormals. `--target`
// runs the kernels (and the peak loop) on another Highway target this CPU
// supports, by its name as printed (AVX3, AVX2, SSE4, ...): a wider target is
// not always the faster one.

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "delegate/bench/pattern_conv_bench.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

#include <pthreadpool.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "delegate/kernels/pattern_conv.h"
#include "delegate/kernels/simd_target.h"

HWY_BEFORE_NAMESPACE();
namespace cocopie {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Ten independent FMA chains per thread; returns FMAs done x lanes.
double FmaLoop(size_t iterations, float* sink) {
  const hn::ScalableTag<float> d;
  auto a0 = hn::Set(d, 1.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
       a7 = a0, a8 = a0, a9 = a0;
  const auto m = hn::Set(d, 0.999999f), c = hn::Set(d, 1e-7f);
  for (size_t i = 0; i < iterations; ++i) {
    a0 = hn::MulAdd(a0, m, c); a1 = hn::MulAdd(a1, m, c); a2 = hn::MulAdd(a2, m, c);
    a3 = hn::MulAdd(a3, m, c); a4 = hn::MulAdd(a4, m, c); a5 = hn::MulAdd(a5, m, c);
    a6 = hn::MulAdd(a6, m, c); a7 = hn::MulAdd(a7, m, c); a8 = hn::MulAdd(a8, m, c);
    a9 = hn::MulAdd(a9, m, c);
  }
  auto sum = hn::Add(hn::Add(hn::Add(a0, a1), hn::Add(a2, a3)),
                     hn::Add(hn::Add(hn::Add(a4, a5), hn::Add(a6, a7)), hn::Add(a8, a9)));
  *sink = hn::GetLane(sum);
  return 10.0 * iterations * hn::Lanes(d);
}

}  // namespace HWY_NAMESPACE
}  // namespace cocopie
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace cocopie {
HWY_EXPORT(FmaLoop);
namespace {

using Clock = std::chrono::steady_clock;

struct Layer {
  const char* name;
  int size, in_c, out_c, stride;
};

// 3x3 convolutions of VGG-16 and ResNet-50 at 224x224 input.
constexpr Layer kLayers[] = {
    {"vgg16.block2_conv2", 112, 128, 128, 1}, {"vgg16.block3_conv2", 56, 256, 256, 1},
    {"vgg16.block4_conv2", 28, 512, 512, 1},  {"vgg16.block5_conv2", 14, 512, 512, 1},
    {"resnet50.conv2_3x3", 56, 64, 64, 1},    {"resnet50.conv3_3x3", 28, 128, 128, 1},
    {"resnet50.conv4_3x3", 14, 256, 256, 1},  {"resnet50.conv5_3x3", 7, 512, 512, 1},
    {"resnet50.conv4_1_3x3_s2", 28, 256, 256, 2},
};

struct PeakTask {
  size_t iterations;
  double flops[64];
  float sink[64];
};

void PeakThread(void* context, size_t thread) {
  auto* t = static_cast<PeakTask*>(context);
  t->flops[thread] = 2.0 * HWY_DYNAMIC_DISPATCH(FmaLoop)(t->iterations, &t->sink[thread]);
}

// FMA peak of `threads` threads in GFLOP/s (best of a few runs).
double MeasurePeak(pthreadpool_t pool, int threads) {
  double best = 0.0;
  for (int run = 0; run < 5; ++run) {
    PeakTask task{};
    task.iterations = 20000000;
    const auto start = Clock::now();
    pthreadpool_parallelize_1d(pool, PeakThread, &task, threads, 0);
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    double flops = 0.0;
    for (int i = 0; i < threads; ++i) flops += task.flops[i];
    best = std::max(best, flops / seconds * 1e-9);
  }
  return best;
}

std::vector<uint32_t> PatternPool(int size, std::mt19937* rng) {
  // 4-of-9 masks that keep the centre, shuffled with a fixed seed.
  std::vector<uint32_t> masks;
  for (uint32_t m = 0; m < 512; ++m) {
    if (__builtin_popcount(m) == 4 && (m & (1u << 4))) masks.push_back(m);
  }
  std::shuffle(masks.begin(), masks.end(), *rng);
  masks.resize(std::min<size_t>(size, masks.size()));
  return masks;
}

struct Options {
  int threads = 2, pool = 8, group = 1, repeats = 20;
  int rows_chunk_bytes = PatternConvScratch().chunk_bytes;
  double removed = 0.72;
  std::vector<Layer> layers;  // --layer SIZE,IN,OUT,STRIDE (repeatable)
  std::string target;         // empty: the best one
};

// Restricts dispatch to the supported target called `name` (matched as the
// delegate matches COCOPIE_SIMD_TARGET); false if none is.
bool SelectTarget(const std::string& name) {
  int64_t chosen = 0;
  if (!ChooseSimdTarget(name, hwy::SupportedAndGeneratedTargets(), &chosen).empty()) return false;
  hwy::SetSupportedTargetsForTest(chosen);
  return true;
}

double BestMs(int repeats, const std::function<void()>& run) {
  run();  // warm-up
  double best = 1e30;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    run();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  return best;
}

void RunLayer(const Layer& l, const Options& o, pthreadpool_t pool, double peak) {
  std::mt19937 rng(42);
  ConvGeometry g;
  g.in_h = g.in_w = l.size;
  g.in_c = l.in_c;
  g.out_c = l.out_c;
  g.kernel_h = g.kernel_w = 3;
  g.stride_h = g.stride_w = l.stride;
  g.act_min = 0.0f;
  std::string error;
  if (!ComputeConvGeometry(Padding::kSame, &g, &error)) std::abort();
  LrLayer layer;
  layer.out_channels = l.out_c;
  layer.in_channels = l.in_c;
  layer.kernel_h = layer.kernel_w = 3;
  layer.entries_per_pattern = 4;
  layer.pattern_masks = PatternPool(o.pool, &rng);
  std::uniform_real_distribution<double> coin(0.0, 1.0);
  std::vector<uint8_t> group_choice(l.in_c);
  for (int co = 0; co < l.out_c; ++co) {
    if (co % o.group == 0) {
      for (int ci = 0; ci < l.in_c; ++ci) {
        group_choice[ci] = coin(rng) < o.removed ? kRemovedKernel
                                                 : rng() % layer.pattern_masks.size();
      }
    }
    for (int ci = 0; ci < l.in_c; ++ci) layer.kernel_pattern.push_back(group_choice[ci]);
  }
  // Unit-scale weights: each output sums ~kept taps terms of variance 1/taps.
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> filter(static_cast<size_t>(l.out_c) * 9 * l.in_c);
  const double kept = 4.0 * l.in_c * (1.0 - o.removed);
  for (float& v : filter) v = normal(rng) / std::sqrt(std::max(kept, 1.0));
  std::vector<float> input(static_cast<size_t>(l.size) * l.size * l.in_c);
  for (float& v : input) v = std::abs(normal(rng));
  std::vector<float> output(static_cast<size_t>(g.out_h) * g.out_w * g.out_c);
  const PackedPatternWeights packed = PackPatternWeights(layer, filter.data(), nullptr);
  const double kept_flops = 2.0 * packed.kept_kernels() * 4 * g.out_h * g.out_w;

  PatternConvScratch rows_scratch;
  rows_scratch.chunk_bytes = o.rows_chunk_bytes;
  const double rows_ms = BestMs(o.repeats, [&] {
    PatternConvSimd(g, packed, input.data(), output.data(), &rows_scratch, pool);
  });
  const BlockPackedWeights blocks = PackLeastPaddedBlocks(packed);  // as the delegate packs
  BlockConvScratch block_scratch;
  const double block_ms = BestMs(o.repeats, [&] {
    PatternConvBlock(g, blocks, input.data(), output.data(), &block_scratch, pool);
  });
  auto gflops = [&](double ms) { return kept_flops / ms * 1e-6; };
  std::printf("%-26s rows %8.3f ms %6.1f GFLOP/s %5.1f%% | block %8.3f ms %6.1f GFLOP/s "
              "%5.1f%% (x%.2f taps, block %d)\n",
              l.name, rows_ms, gflops(rows_ms), 100.0 * gflops(rows_ms) / peak, block_ms,
              gflops(block_ms), 100.0 * gflops(block_ms) / peak,
              static_cast<double>(blocks.padded_taps) / std::max<int64_t>(1, blocks.kept_taps),
              blocks.block);
}

int Main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    const char* value = argv[i + 1];
    if (flag == "--threads") o.threads = std::atoi(value);
    else if (flag == "--removed") o.removed = std::atof(value);
    else if (flag == "--pool") o.pool = std::atoi(value);
    else if (flag == "--group") o.group = std::atoi(value);
    else if (flag == "--repeats") o.repeats = std::atoi(value);
    else if (flag == "--rows-chunk-bytes") o.rows_chunk_bytes = std::atoi(value);
    else if (flag == "--target") o.target = value;
    else if (flag == "--layer") {
      Layer l{"custom", 0, 0, 0, 0};
      if (std::sscanf(value, "%d,%d,%d,%d", &l.size, &l.in_c, &l.out_c, &l.stride) != 4 ||
          l.size < 1 || l.size > 1024 || l.in_c < 1 || l.in_c > 4096 || l.out_c < 1 ||
          l.out_c > 4096 || l.stride < 1 || l.stride > 4) {
        std::fprintf(stderr, "expected --layer SIZE,IN,OUT,STRIDE within 1024,4096,4096,4. "
                             "Received: %s\n", value);
        return 2;
      }
      o.layers.push_back(l);
    }
    else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i]);
      return 2;
    }
  }
  if (o.threads < 1 || o.threads > 64 || o.pool < 1 || o.pool > 16 || o.group < 1 ||
      o.repeats < 1 || !(o.removed >= 0.0 && o.removed < 1.0) || o.rows_chunk_bytes < 0) {
    std::fprintf(stderr, "expected 1 <= threads <= 64, 1 <= pool <= 16, group >= 1, "
                         "repeats >= 1, 0 <= removed < 1 and rows-chunk-bytes >= 0\n");
    return 2;
  }
  if (!o.target.empty() && !SelectTarget(o.target)) {
    std::fprintf(stderr, "expected --target to name a Highway target this CPU supports. "
                         "Received: %s\n", o.target.c_str());
    return 2;
  }
  pthreadpool_t pool = pthreadpool_create(o.threads);
  const double peak = MeasurePeak(pool, o.threads);
  std::printf("target %s, %d threads, FMA peak %.1f GFLOP/s; pool %d, removed %.2f, group %d, "
              "rows chunk %d B; GFLOP/s on kept MACs, %% of peak, block taps run per kept tap and channel block\n",
              PatternConvSimdTarget(), o.threads, peak, o.pool, o.removed, o.group,
              o.rows_chunk_bytes);
  if (o.layers.empty()) o.layers.assign(std::begin(kLayers), std::end(kLayers));
  for (const Layer& l : o.layers) RunLayer(l, o, pool, peak);
  pthreadpool_destroy(pool);
  return 0;
}

}  // namespace
}  // namespace cocopie

int main(int argc, char** argv) { return cocopie::Main(argc, argv); }
#endif  // HWY_ONCE
