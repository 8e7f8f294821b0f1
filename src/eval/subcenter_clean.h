// Sub-center ArcFace's noise cleaning (Deng et al., ECCV 2020, §3.2): with a model trained with
// K sub-centres per class, each class's dominant sub-centre is the one most of its samples are
// nearest to; a sample farther than a fixed angle (75° in the paper) from its class's dominant
// sub-centre is dropped as noise. `marginface clean` writes the kept samples as a training list.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace mf::eval {

struct SubcenterCleaning {
  std::vector<uint8_t> keep;  // per sample
  std::vector<int64_t> dominant;  // per class: the dominant sub-centre (0 … G − 1), −1: no samples
  std::vector<double> angle;  // per sample: degrees to its class's dominant sub-centre
  std::vector<int64_t> kept_per_class, dropped_per_class;
  int64_t kept = 0, dropped = 0;
};

// embeddings (N, D) (any norm), labels in [0, K), subcentres (K·G, D) with class k's G rows
// consecutive (insightface's layout, as the head `subcenter_arcface` stores "weight"). Ties of
// nearest sub-centre or of the dominant count go to the lower index.
SubcenterCleaning clean_by_subcentres(const Tensor& embeddings, const std::vector<int64_t>& labels,
                                      const Tensor& subcentres, int64_t groups,
                                      double max_angle_degrees);

}  // namespace mf::eval
