// Prints the target logit against θ for the built-in classifier heads as CSV, from the heads'
// own margin functions (Head::target_logit): the data of the ArcFace paper's target-logit figure
// (Deng et al. 2019, Fig. 4(b)). Unit embedding and class weight, before the scale s; SphereFace
// at λ = λ_min = 5 (its annealed end point).
//   build/bin/target_logits [--step-degrees 1] > target_logits.csv
//   /usr/bin/python3 scripts/plot_target_logits.py target_logits.csv docs/target_logits.png
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include "losses/head.h"
#include "util/error.h"

namespace {

struct Curve {
  std::string label, type;
  std::vector<std::pair<std::string, std::string>> params;
};

}  // namespace

int main(int argc, char** argv) {
  double step_deg = 1.0;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--step-degrees") == 0 && i + 1 < argc) {
      step_deg = std::stod(argv[++i]);
    } else {
      std::cerr << "usage: " << argv[0] << " [--step-degrees D]\n";
      return 2;
    }
  }
  const std::vector<Curve> curves{
      {"Softmax", "softmax", {}},
      {"SphereFace (m=4, lambda=5)", "sphereface", {}},
      {"ArcFace (m=0.5)", "arcface", {{"m", "0.5"}}},
      {"CosFace (m=0.35)", "cosface", {{"m", "0.35"}}},
      {"CM1 (1, 0.3, 0.2)", "combined", {{"m1", "1"}, {"m2", "0.3"}, {"m3", "0.2"}}},
      {"CM2 (0.9, 0.4, 0.15)", "combined", {{"m1", "0.9"}, {"m2", "0.4"}, {"m3", "0.15"}}},
  };
  try {
    const mf::StepInfo step{.step = 1'000'000};  // past every warm-up; SphereFace at λ_min
    std::vector<double> theta;
    for (double deg = 0; deg <= 180.0 + 1e-9; deg += step_deg) theta.push_back(deg * M_PI / 180);
    std::vector<std::vector<double>> values;
    std::cout << "theta_deg";
    for (const Curve& c : curves) {
      mf::Params params("head");
      for (const auto& [k, v] : c.params) params.set(k, v, "target_logits");
      mf::Rng rng(0);
      auto head = mf::head_registry().create(c.type, params, 2, 2, rng);
      values.push_back(mf::target_logit_curve(*head, theta, step));
      std::cout << ",\"" << c.label << "\"";
    }
    std::cout << "\n";
    for (size_t i = 0; i < theta.size(); ++i) {
      std::printf("%.6g", theta[i] * 180 / M_PI);
      for (const auto& v : values) std::printf(",%.9g", v[i]);
      std::printf("\n");
    }
  } catch (const mf::Error& e) {
    std::cerr << "target_logits: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
