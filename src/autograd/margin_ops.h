// Differentiable ops of the margin heads and metric losses (src/losses), each a fused kernel from
// tensor/kernels/margin.h or tensor/kernels/pair_losses.h with a hand-written backward.
// Shape letters as in tensor/tensor.h.
#pragma once

#include <vector>

#include "autograd/ops.h"
#include "tensor/kernels/margin.h"
#include "tensor/kernels/pair_losses.h"

namespace mf {

// Cosines c (N, K) → logits scale·c, except the target column scale·f(c[n, y_n]) with the margin
// function f of `spec` (kernels/margin.h); the backward multiplies the target column by f′ (or by
// 1 with spec.straight_through).
Var margin_logits(const Var& cos, const Labels& labels, const kernels::MarginSpec& spec,
                  float scale);

// The same with a margin per row: row_specs[n] for row n (ElasticFace's drawn margins, AdaFace's
// norm-dependent ones). row_specs has N entries.
Var margin_logits(const Var& cos, const Labels& labels,
                  const std::vector<kernels::MarginSpec>& row_specs, float scale);

// CurricularFace: cosines (N, K) → scale·(ArcFace's target cos(θ_y + m) with the guard; hard
// negatives c_j > cos(θ_y + m) as c_j·(t + c_j); the rest c_j). t is a constant (no gradient).
Var curricular_logits(const Var& cos, const Labels& labels, double m, float t, float scale);

// MagFace: cosines (N, K) and per-row margins m (N, 1) → scale·c with the target column
// scale·cos(θ_y + m_n) (ArcFace's guard at m_n). The margin receives ∂/∂m, so a margin computed
// from the feature norm passes a gradient back to it.
Var magface_logits(const Var& cos, const Var& margin, const Labels& labels, float scale);

// x (N, K·G) → (N, K), the maximum of each group of G consecutive columns (Sub-center ArcFace's
// pooling over a class's sub-centres); the gradient goes to the winning column (first on ties).
Var group_max(const Var& x, int64_t groups);

// x (N, D) → ‖x_n‖ as (N, 1), ready to broadcast over (N, K) with mul().
Var row_norm(const Var& x);

// DeepID2 verification loss: mean over all pairs i < j of the batch of ½‖f_i − f_j‖² (same
// label) or ½·max(0, margin − ‖f_i − f_j‖)² (different labels). f (N, D) → scalar.
Var contrastive_loss(const Var& f, const Labels& labels, float margin);

// FaceNet triplet loss: mean over `triplets` of max(0, ‖f_a − f_p‖² − ‖f_a − f_n‖² + alpha).
// f (N, D) → scalar; the triplets index rows of f.
Var triplet_loss(const Var& f, const std::vector<kernels::Triplet>& triplets, float alpha);

}  // namespace mf
