// center: softmax plus center loss (Wen et al., ECCV 2016, eq. 2 and 5, Algorithm 1).
//
//   L = L_softmax + λ·(1/(2N)) Σ_n ‖x_n − c_{y_n}‖²
//
// Gradient: softmax's, plus ∂/∂x_n = λ·(x_n − c_{y_n}) / N (caffe-face's center_loss_layer:
// Σ‖x − c‖²/(2M), dL/dx = (x − c)/M). The centers are a buffer, constant for the gradient.
// Center step, after the optimizer step (after_step), with rate α:
//   Δc_j = Σ_{y_i = j} (c_j − x_i) / (1 + n_j),   c_j ← c_j − α·Δc_j.
// Pitfalls (docs/heads.md): that step is not the gradient of the loss (which would be
// λ·Σ_{y_i=j}(c_j − x_i)/N), so it stays an explicit update instead of going through the optimizer
// (caffe-face writes it into the param diff, tying α to the learning rate; PR #1 argues against).
// Centers start at zero (facenet), so early on they pull embeddings toward the origin until they
// catch up with the class means; λ is small (0.003 to 0.008) for that reason.
// Parameters: lambda (0.008, caffe-face's face setting), alpha (0.5), bias (false).
#include "losses/head.h"
#include "losses/heads.h"
#include "util/error.h"

namespace mf {

void update_centers(Tensor& centers, const Tensor& embeddings, const Labels& labels, double alpha) {
  const int64_t K = centers.dim(0), D = centers.dim(1), N = embeddings.dim(0);
  MF_CHECK(embeddings.rank() == 2 && embeddings.dim(1) == D && int64_t(labels.size()) == N,
           "update_centers: embeddings ", embeddings.shape(), " and ", labels.size(),
           " labels for centers ", centers.shape());
  std::vector<double> delta(K * D, 0.0);
  std::vector<int64_t> count(K, 0);
  for (int64_t n = 0; n < N; ++n) {
    const int64_t j = labels[n];
    MF_CHECK(j >= 0 && j < K, "update_centers: label ", j, " outside [0, ", K, ")");
    ++count[j];
    for (int64_t d = 0; d < D; ++d)
      delta[j * D + d] += double(centers.data()[j * D + d]) - embeddings.data()[n * D + d];
  }
  for (int64_t j = 0; j < K; ++j)
    for (int64_t d = 0; d < D; ++d)
      centers.data()[j * D + d] -= float(alpha * delta[j * D + d] / double(1 + count[j]));
}

namespace {

class CenterHead final : public ClassifierHead {
 public:
  CenterHead(int64_t D, int64_t K, double lambda, double alpha, bool bias, Rng& rng)
      : ClassifierHead("center", D, K, rng), lambda_(lambda), alpha_(alpha) {
    if (bias) bias_ = register_parameter("bias", Tensor::zeros({K}));
    centers_ = register_buffer("centers", Tensor::zeros({K, D}));
  }

  HeadOutput forward(const Var& x, const Labels& labels, const StepInfo&) override {
    check_input(x, labels);
    const int64_t N = x.dim(0);
    HeadOutput out = output(linear(x, class_weight(), bias_), labels);  // (N, K)
    Tensor c_y = Tensor::empty({N, D_});  // the label's center per row, a constant
    for (int64_t n = 0; n < N; ++n)
      std::copy_n(centers_.data() + labels[n] * D_, D_, c_y.data() + n * D_);
    const Var diff = sub(x, Var(c_y));  // (N, D)
    out.loss = add(out.loss, affine(sum(mul(diff, diff)), float(lambda_ / (2.0 * N))));
    return out;
  }

  void after_step(const Tensor& embeddings, const Labels& labels, const Tensor&) override {
    update_centers(centers_, embeddings, labels, alpha_);
  }

  std::optional<double> target_logit(double theta, const StepInfo&) const override {
    return std::cos(theta);
  }

 private:
  double lambda_, alpha_;
  Var bias_;
  Tensor centers_;
};

}  // namespace

void register_center(HeadRegistry& registry) {
  registry.add(
      "center",
      [](const Params& p, int64_t D, int64_t K, Rng& rng) -> std::unique_ptr<Head> {
        const double lambda = p.get_double("lambda", 0.008, 0.0, 1e3);
        const double alpha = p.get_double_open_low("alpha", 0.5, 0.0, 1.0);
        return std::make_unique<CenterHead>(D, K, lambda, alpha, p.get_bool("bias", false), rng);
      },
      "softmax + λ·center loss (Wen et al. 2016); centers updated after each step");
}

}  // namespace mf
