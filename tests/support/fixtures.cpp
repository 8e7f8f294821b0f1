#include "support/fixtures.h"

#include <algorithm>
#include <cmath>

namespace mf::test {

std::string fixture_path(const std::string& file) {
  return std::string(MF_FIXTURE_DIR) + "/" + file;
}
std::string shared_data_dir() {
  return std::string(MF_SHARED_DIR) + "/data";
}

Fixture::Fixture(const std::string& file, const std::string& group)
    : file_(fixture_path(file), h5::File::Mode::kRead), group_(group) {}

::testing::AssertionResult tensors_close(const Tensor& ours, const Tensor& ref, double rtol,
                                         const std::string& what) {
  if (!ours.defined()) return ::testing::AssertionFailure() << what << ": no value computed";
  if (ours.numel() != ref.numel())
    return ::testing::AssertionFailure()
           << what << ": shape " << ours.shape() << " vs reference " << ref.shape();
  double max_ref = 0, max_diff = 0;
  int64_t worst = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) {
    max_ref = std::max(max_ref, double(std::abs(ref.data()[i])));
    const double d = std::abs(double(ours.data()[i]) - double(ref.data()[i]));
    if (!(d <= max_diff)) {  // also catches NaN
      max_diff = d;
      worst = i;
    }
  }
  const double limit = rtol * std::max(max_ref, 1e-6);
  if (max_diff <= limit)
    return ::testing::AssertionSuccess()
           << what << ": maxdiff " << max_diff << " (limit " << limit << ")";
  auto failure = ::testing::AssertionFailure();
  failure << what << ": maxdiff " << max_diff << " > " << limit << " at index " << worst
          << " (ours " << ours.data()[worst] << ", reference " << ref.data()[worst] << ")\n  ours:";
  for (int64_t i = 0; i < std::min<int64_t>(5, ref.numel()); ++i) failure << ' ' << ours.data()[i];
  failure << "\n  ref: ";
  for (int64_t i = 0; i < std::min<int64_t>(5, ref.numel()); ++i) failure << ' ' << ref.data()[i];
  return failure;
}

}  // namespace mf::test
