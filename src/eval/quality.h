// Face quality from the feature norm (MagFace, Meng et al., CVPR 2021, §3.3 and Fig. 5): the
// error-versus-reject curve. A pair's quality is the lower of its two faces' norms ‖f(x)‖ (before
// normalisation); rejecting the lowest-quality pairs first should lower the error when the norm
// measures quality (Grother & Tabassi, "Performance of biometric quality measures", 2007).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace mf::eval {

struct QualityCurve {
  std::string label;             // the model, for the legend
  double far = 1e-3;             // FNMR is read at the threshold of this FAR on all pairs
  double threshold = 0;          // that threshold (accept: score ≥ threshold)
  std::vector<double> rejected;  // fraction of pairs rejected, lowest quality first
  std::vector<double> accuracy;  // k-fold cross-validated accuracy on the rest
  std::vector<double> fnmr;      // same-identity pairs of the rest scoring below the threshold
  std::vector<int64_t> kept;     // pairs left
};

// For each fraction r (ascending, each in [0, 0.9]) the ⌊r·P⌋ pairs of lowest quality (ties: the
// earlier pair first) are dropped and the rest is cross-validated over `folds` (empty: ten
// consecutive slices; a fold left empty is dropped) as verify() does. The threshold is fixed once
// on every pair: eval's operating point at `far` (operating_point, verification.h).
QualityCurve error_versus_reject(std::span<const double> scores, std::span<const uint8_t> same,
                                 std::span<const int> folds, std::span<const double> quality,
                                 double far, const std::vector<double>& fractions);

// 0, 0.05, …, 0.5.
std::vector<double> default_reject_fractions();

// The curves in one PNG: verification error (1 − accuracy, solid) and FNMR at the FAR against
// the fraction rejected, one colour per model.
void write_quality_curve_png(const std::string& path, const std::vector<QualityCurve>& curves,
                             const std::string& title);

}  // namespace mf::eval
