// The GEMM convolution cuts its work into column blocks (bands of output rows of one large map,
// or several small maps side by side; tensor/kernels/conv.h). These tests compare it, forward and
// backward, with the definition of cross-correlation written as plain loops, on shapes that make
// every kind of block: several bands per image with a short last band, strided and padded bands,
// pointwise bands read in place, groups of images with a short last group, channel groups — at
// one and two threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <vector>

#include "support/gradcheck.h"
#include "tensor/kernels/conv.h"
#include "tensor/kernels/gemm_fp32.h"

namespace mf::test {
namespace {

using kernels::ConvGeometry;

// x[n, c, ih, iw] for ih, iw possibly outside the image (zero padding).
double at(const Vec& x, const ConvGeometry& g, int64_t n, int64_t c, int64_t ih, int64_t iw) {
  if (ih < 0 || ih >= g.H || iw < 0 || iw >= g.W) return 0;
  return x[((n * g.C + c) * g.H + ih) * g.W + iw];
}

struct Grads {
  Vec y, dx, dw, db;
};

// y[n,o,oh,ow] = b[o] + Σ_{c in o's group, ki, kj} w[o, c', ki, kj] · x[n, c, oh·s − p + ki, ow·s −
// p + kj], and its adjoints for a given dy, by the same sum.
Grads reference(const ConvGeometry& g, const Vec& x, const Vec& w, const Vec& b, const Vec& dy) {
  const int64_t Ho = g.Ho(), Wo = g.Wo(), Cg = g.Cg(), Og = g.Og();
  Grads r{Vec(g.N * g.O * Ho * Wo), Vec(x.size()), Vec(w.size()), Vec(g.O)};
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t oh = 0; oh < Ho; ++oh)
        for (int64_t ow = 0; ow < Wo; ++ow) {
          const int64_t yi = ((n * g.O + o) * Ho + oh) * Wo + ow;
          double sum = b[o];
          r.db[o] += dy[yi];
          for (int64_t cg = 0; cg < Cg; ++cg)
            for (int64_t ki = 0; ki < g.kH; ++ki)
              for (int64_t kj = 0; kj < g.kW; ++kj) {
                const int64_t c = (o / Og) * Cg + cg;
                const int64_t ih = oh * g.stride - g.pad + ki, iw = ow * g.stride - g.pad + kj;
                const int64_t wi = ((o * Cg + cg) * g.kH + ki) * g.kW + kj;
                sum += w[wi] * at(x, g, n, c, ih, iw);
                r.dw[wi] += dy[yi] * at(x, g, n, c, ih, iw);
                if (ih >= 0 && ih < g.H && iw >= 0 && iw < g.W)
                  r.dx[((n * g.C + c) * g.H + ih) * g.W + iw] += dy[yi] * w[wi];
              }
          r.y[yi] = sum;
        }
  return r;
}

void expect_near(const Vec& got, const Vec& want, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-10 * (1 + std::abs(want[i]))) << what << " at " << i;
}

void check_blocks(const ConvGeometry& g, uint64_t seed) {
  Rng rng(seed);
  const Vec x = random_vec(rng, g.N * g.C * g.H * g.W),
            w = random_vec(rng, g.O * g.Cg() * g.kH * g.kW), b = random_vec(rng, g.O),
            dy = random_vec(rng, g.N * g.O * g.Ho() * g.Wo());
  const Grads want = reference(g, x, w, b, dy);
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    SCOPED_TRACE(testing::Message() << threads << " threads");
    Grads got{Vec(want.y.size()), Vec(x.size()), Vec(w.size()), Vec(g.O)};
    kernels::conv2d_forward<double>(got.y.data(), x.data(), w.data(), b.data(), g);
    kernels::conv2d_backward<double>(got.dx.data(), got.dw.data(), got.db.data(), dy.data(),
                                     x.data(), w.data(), g);
    expect_near(got.y, want.y, "y");
    expect_near(got.dx, want.dx, "dx");
    expect_near(got.dw, want.dw, "dw");
    expect_near(got.db, want.db, "db");

    // The inference epilogue on every kind of block: ((y + b)·scale + shift), PReLU, + residual,
    // against the reference output put through the same steps one by one.
    const Vec scale = random_vec(rng, g.O), shift = random_vec(rng, g.O),
              slope = random_vec(rng, g.O), residual = random_vec(rng, want.y.size());
    Vec post_want = want.y;
    const int64_t plane = g.Ho() * g.Wo();
    for (size_t i = 0; i < post_want.size(); ++i) {
      const int64_t o = int64_t(i) / plane % g.O;
      double v = post_want[i] * scale[o] + shift[o];
      v = v > 0 ? v : slope[o] * v;
      post_want[i] = v + residual[i];
    }
    Vec post_got(want.y.size());
    kernels::conv2d_forward<double>(post_got.data(), x.data(), w.data(), b.data(), g, nullptr,
                                    {.scale = scale.data(),
                                     .shift = shift.data(),
                                     .slope = slope.data(),
                                     .residual = residual.data()});
    expect_near(post_got, post_want, "y with the epilogue");
  }
  omp_set_num_threads(2);
}

int64_t blocks_of(const ConvGeometry& g) {
  return kernels::column_blocks(g, 0, g.N).size();
}

TEST(Conv2dBlocks, BandsOfALargeMap3x3) {
  // 4 channels → rows 36 → 1024 columns per block: a 37×41 map is two bands, the second short.
  const ConvGeometry g{
      .N = 3, .C = 4, .H = 37, .W = 41, .O = 5, .kH = 3, .kW = 3, .stride = 1, .pad = 1};
  EXPECT_EQ(blocks_of(g), 3 * 2);
  check_blocks(g, 1);
}

TEST(Conv2dBlocks, StridedPaddedBands) {
  const ConvGeometry g{
      .N = 2, .C = 3, .H = 70, .W = 67, .O = 4, .kH = 3, .kW = 3, .stride = 2, .pad = 1};
  EXPECT_GT(blocks_of(g), 2);
  check_blocks(g, 2);
}

TEST(Conv2dBlocks, PointwiseBandsInPlaceAndStrided) {
  check_blocks({.N = 3, .C = 6, .H = 40, .W = 35, .O = 4, .kH = 1, .kW = 1}, 3);
  check_blocks({.N = 2, .C = 6, .H = 60, .W = 61, .O = 4, .kH = 1, .kW = 1, .stride = 2}, 4);
  // 156 columns, under the 1,024 target: still one image per block, read and written in place.
  const ConvGeometry small{.N = 3, .C = 4, .H = 12, .W = 13, .O = 5, .kH = 1, .kW = 1};
  EXPECT_EQ(blocks_of(small), 3);
  check_blocks(small, 19);
}

TEST(Conv2dBlocks, SmallMapsSideBySideWithAShortLastGroup) {
  // 8 channels → rows 72 → 1024 columns wanted → 21 maps of 7×7 per block; 45 images → 21 + 21 + 3
  // on one thread (at two threads, 22 + 23 images: 21 + 1 and 21 + 2).
  const ConvGeometry g{
      .N = 45, .C = 8, .H = 7, .W = 7, .O = 6, .kH = 3, .kW = 3, .stride = 1, .pad = 1};
  EXPECT_EQ(blocks_of(g), 3);
  check_blocks(g, 5);
  check_blocks({.N = 9, .C = 5, .H = 6, .W = 5, .O = 7, .kH = 1, .kW = 1}, 6);
}

TEST(Conv2dBlocks, ChannelGroupsInBandsAndSideBySide) {
  // 5 channels per group: wide enough for the GEMM path (direct_groups() is false).
  const ConvGeometry wide{
      .N = 2, .C = 10, .H = 33, .W = 34, .O = 4, .kH = 3, .kW = 3, .pad = 1, .groups = 2};
  EXPECT_FALSE(wide.direct_groups());
  check_blocks(wide, 17);
  // Narrow groups (2 channels in and out: MobileFaceNet's grouped 3×3) run as direct loops; the
  // ones below have 2 in and 3 out.
  const ConvGeometry narrow{
      .N = 3, .C = 8, .H = 13, .W = 21, .O = 8, .kH = 3, .kW = 3, .pad = 1, .groups = 4};
  EXPECT_TRUE(narrow.direct_groups());
  check_blocks(narrow, 18);
  check_blocks({.N = 2,
                .C = 6,
                .H = 33,
                .W = 34,
                .O = 9,
                .kH = 3,
                .kW = 3,
                .stride = 1,
                .pad = 1,
                .groups = 3},
               7);
  check_blocks({.N = 5,
                .C = 4,
                .H = 5,
                .W = 5,
                .O = 6,
                .kH = 3,
                .kW = 3,
                .stride = 2,
                .pad = 1,
                .groups = 2},
               8);
}

TEST(Conv2dBlocks, SamePaddingCopiesWholeBandsAndZeroesTheWrappedEdges) {
  // Stride 1 with W = Wo: im2col copies a band's rows as one run and zeroes the values that
  // wrapped around a row's edge — shifts of ±1 (3×3) and ±2 (5×5), bands cut mid-image.
  check_blocks({.N = 2, .C = 3, .H = 9, .W = 11, .O = 4, .kH = 5, .kW = 5, .pad = 2}, 21);
  check_blocks({.N = 1, .C = 40, .H = 30, .W = 29, .O = 3, .kH = 3, .kW = 3, .pad = 1}, 22);
}

// In float on our own GEMM, with the batch split over 2 threads the forward generates col's rows
// as the GEMM packs them (sgemm::gemm_rows) instead of writing col: the same bits as the one-thread
// forward through im2col, and within float rounding of the definition.
TEST(Conv2dBlocks, GeneratedColumnsGiveTheSameBitsAsIm2col) {
  const kernels::sgemm::Backend before = kernels::sgemm::active();
  for (const kernels::sgemm::Backend backend : kernels::sgemm::backends()) {
    if (backend == kernels::sgemm::Backend::blas) continue;  // never generates (OpenBLAS)
    kernels::sgemm::set_active(backend);
    for (const ConvGeometry& g :
         {ConvGeometry{.N = 4, .C = 5, .H = 23, .W = 21, .O = 7, .kH = 3, .kW = 3, .pad = 1},
          ConvGeometry{.N = 6, .C = 8, .H = 7, .W = 7, .O = 13, .kH = 3, .kW = 3, .pad = 1},
          ConvGeometry{
              .N = 3, .C = 4, .H = 30, .W = 31, .O = 6, .kH = 3, .kW = 3, .stride = 2, .pad = 1},
          ConvGeometry{.N = 2, .C = 6, .H = 9, .W = 9, .O = 4, .kH = 3, .kW = 3, .groups = 2}}) {
      SCOPED_TRACE(testing::Message() << kernels::sgemm::name(backend) << " " << g.H << "x" << g.W
                                      << " s" << g.stride << " groups " << g.groups);
      Rng rng(uint64_t(g.H * g.W + g.C));
      const Vec x = random_vec(rng, g.N * g.C * g.H * g.W),
                w = random_vec(rng, g.O * g.Cg() * g.kH * g.kW), b = random_vec(rng, g.O);
      const Grads want = reference(g, x, w, b, Vec(g.N * g.O * g.Ho() * g.Wo(), 0.0));
      const std::vector<float> xf(x.begin(), x.end()), wf(w.begin(), w.end()),
          bf(b.begin(), b.end());
      std::vector<float> one(want.y.size()), two(want.y.size());
      omp_set_num_threads(1);
      kernels::conv2d_forward<float>(one.data(), xf.data(), wf.data(), bf.data(), g);
      omp_set_num_threads(2);
      kernels::conv2d_forward<float>(two.data(), xf.data(), wf.data(), bf.data(), g);
      EXPECT_EQ(std::memcmp(one.data(), two.data(), one.size() * sizeof(float)), 0);
      for (size_t i = 0; i < two.size(); ++i)
        ASSERT_NEAR(two[i], want.y[i], 1e-5 * (1 + std::abs(want.y[i]))) << "at " << i;
    }
  }
  kernels::sgemm::set_active(before);
}

TEST(Conv2dBlocks, PaddingWiderThanTheKernelReach) {
  // pad 2 with a 3×3 kernel: whole output rows and columns see only padding.
  check_blocks({.N = 2, .C = 2, .H = 4, .W = 3, .O = 3, .kH = 3, .kW = 3, .stride = 1, .pad = 2},
               9);
}

// Depthwise convolutions (groups = channels; MobileFaceNet): padded, phase-split planes summed in
// blocks of 16 output columns — rows shorter than, equal to and longer than a block, strides 1–3,
// padding 0–2, odd sizes (a short last phase), and the 7×7 global depthwise convolution.
TEST(Conv2dBlocks, DepthwiseStridesPaddingsAndRowLengths) {
  struct Case {
    int64_t N, C, H, W, k, stride, pad;
  };
  for (const Case& c :
       {Case{2, 3, 14, 14, 3, 1, 1}, Case{2, 3, 28, 28, 3, 2, 1}, Case{1, 2, 15, 37, 3, 2, 1},
        Case{1, 2, 9, 33, 3, 1, 0}, Case{2, 2, 11, 17, 3, 3, 2}, Case{2, 4, 7, 7, 7, 1, 0},
        Case{1, 2, 6, 5, 5, 1, 2}, Case{3, 5, 1, 1, 1, 1, 0}}) {
    SCOPED_TRACE(testing::Message()
                 << c.H << "x" << c.W << " k" << c.k << " s" << c.stride << " p" << c.pad);
    check_blocks({.N = c.N,
                  .C = c.C,
                  .H = c.H,
                  .W = c.W,
                  .O = c.C,
                  .kH = c.k,
                  .kW = c.k,
                  .stride = c.stride,
                  .pad = c.pad,
                  .groups = c.C},
                 11 + uint64_t(c.W));
  }
}

}  // namespace
}  // namespace mf::test
