#include "eval/subcenter_clean.h"

#include <algorithm>
#include <cmath>

#include "eval/search.h"
#include "util/error.h"

namespace mf::eval {

SubcenterCleaning clean_by_subcentres(const Tensor& embeddings, const std::vector<int64_t>& labels,
                                      const Tensor& subcentres, int64_t groups,
                                      double max_angle_degrees) {
  MF_CHECK(
      embeddings.rank() == 2 && subcentres.rank() == 2 && embeddings.dim(1) == subcentres.dim(1),
      "clean: embeddings ", embeddings.shape(), " and sub-centres ", subcentres.shape(),
      " do not match");
  MF_CHECK(groups >= 1 && subcentres.dim(0) % groups == 0, "clean: ", subcentres.dim(0),
           " sub-centre rows are not a multiple of ", groups, " per class");
  MF_CHECK(int64_t(labels.size()) == embeddings.dim(0), "clean: ", labels.size(), " labels for ",
           embeddings.dim(0), " embeddings");
  MF_CHECK(max_angle_degrees > 0 && max_angle_degrees <= 180,
           "clean: the angle must be in (0, 180] degrees, got ", max_angle_degrees);
  const int64_t N = embeddings.dim(0), D = embeddings.dim(1), K = subcentres.dim(0) / groups;
  // cos (N, G): each sample against its own class's sub-centres.
  std::vector<double> cos(N * groups);
  std::vector<int64_t> votes(K * groups, 0);
  for (int64_t n = 0; n < N; ++n) {
    MF_CHECK(labels[n] >= 0 && labels[n] < K, "clean: label ", labels[n], " of sample ", n,
             " is outside [0, ", K, ")");
    int64_t nearest = 0;
    for (int64_t g = 0; g < groups; ++g) {
      cos[n * groups + g] = cosine_similarity(embeddings.data() + n * D,
                                              subcentres.data() + (labels[n] * groups + g) * D, D);
      if (cos[n * groups + g] > cos[n * groups + nearest]) nearest = g;
    }
    ++votes[labels[n] * groups + nearest];
  }
  SubcenterCleaning out;
  out.dominant.assign(K, -1);
  out.kept_per_class.assign(K, 0);
  out.dropped_per_class.assign(K, 0);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t* v = votes.data() + k * groups;
    const int64_t best = std::max_element(v, v + groups) - v;
    if (v[best] > 0) out.dominant[k] = best;
  }
  out.keep.resize(N);
  out.angle.resize(N);
  for (int64_t n = 0; n < N; ++n) {
    const double c = std::clamp(cos[n * groups + out.dominant[labels[n]]], -1.0, 1.0);
    out.angle[n] = std::acos(c) * 180.0 / M_PI;
    out.keep[n] = out.angle[n] <= max_angle_degrees;
    (out.keep[n] ? out.kept_per_class : out.dropped_per_class)[labels[n]]++;
    (out.keep[n] ? out.kept : out.dropped)++;
  }
  return out;
}

}  // namespace mf::eval
