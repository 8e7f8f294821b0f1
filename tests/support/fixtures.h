// PyTorch reference fixtures: HDF5 files under tests/fixtures written by
// scripts/make_*_fixtures.py. Each case is a group holding its input, parameter, output and
// gradient tensors plus attributes with the op's options.
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "h5/file.h"
#include "tensor/tensor.h"

namespace mf::test {

std::string fixture_path(const std::string& file);  // MF_FIXTURE_DIR/file
std::string shared_data_dir();                      // ../shared/data beside the project

class Fixture {
 public:
  Fixture(const std::string& file, const std::string& group);
  Tensor tensor(const std::string& name) const { return file_.read_tensor(group_ + "/" + name); }
  bool has(const std::string& name) const { return file_.exists(group_ + "/" + name); }
  std::vector<int64_t> ints(const std::string& name) const {
    return file_.read_int64(group_ + "/" + name);
  }
  double attr(const std::string& name) const { return file_.read_attr_double(group_, name); }
  int64_t attr_int(const std::string& name) const { return file_.read_attr_int(group_, name); }
  std::vector<std::string> cases() const { return file_.list(group_); }

 private:
  h5::File file_;
  std::string group_;
};

// max |ours − ref| ≤ rtol · max(max |ref|, 1e-6): the per-tensor criterion used against PyTorch.
// The message reports the worst index, both values and the first few of each.
::testing::AssertionResult tensors_close(const Tensor& ours, const Tensor& ref, double rtol,
                                         const std::string& what);

}  // namespace mf::test
