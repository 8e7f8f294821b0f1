// The target-logit figure of the ArcFace paper (Deng et al. 2019, Fig. 4(b)): each head's target
// logit before the scale s against θ, the angle between the embedding and its class weight,
// computed by the heads' own margin functions (Head::target_logit), so the figure shows what the
// code trains. Drawn by `marginface ablate` (target_logits.png, the heads of the ablation at their
// last step) and `marginface describe --target-logits` (docs/target_logits.png).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "util/params.h"

namespace mf {

struct TargetLogitCurve {
  std::string label;  // legend
  std::string type;   // head registry name
  Params params;      // the head's section without `type`
  int64_t step = 0;   // optimizer steps taken: warm-ups and SphereFace's λ depend on it
};

// Writes the chart as a PNG; heads without class logits (triplet, contrastive) are left out.
// Returns false (writing nothing) when no curve is left.
bool write_target_logit_figure(const std::string& path,
                               const std::vector<TargetLogitCurve>& curves);

}  // namespace mf
