// The checkpoint reader, structure-aware: the input decides what an HDF5 checkpoint holds — each
// /meta attribute absent or of any type and value, each model tensor present, missing, misshapen,
// renamed or non-finite, extra tensors, a head, an identity list — and the harness writes that
// file with our HDF5 writer, then reads it back as `eval`, `embed` and `train --resume` do
// (read_checkpoint_meta, load_checkpoint). Raw byte mutations would mostly exercise libhdf5's own
// parser (not ours to fix); this drives every branch of our reader. Only mf::Error may come out.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_util.h"
#include "h5/file.h"
#include "io/checkpoint.h"
#include "layers/layers.h"
#include "tensor/rng.h"
#include "util/error.h"

namespace {

std::shared_ptr<mf::Sequential> small_model() {
  mf::Rng rng(1);
  auto m = std::make_shared<mf::Sequential>();
  m->add(std::make_shared<mf::Conv2d>(mf::Conv2dConfig{.in = 3, .out = 4, .kernel = 3, .pad = 1},
                                      rng));
  m->add(std::make_shared<mf::BatchNorm>(mf::BatchNormConfig{.channels = 4}));
  m->add(std::make_shared<mf::PReLU>(4));
  return m;
}

void write_meta_attr(mf::h5::File& f, FuzzedDataProvider& in, const char* name) {
  switch (in.ConsumeIntegralInRange<int>(0, 5)) {
    case 0:
      return;  // absent
    case 1:
      f.write_attr("/meta", name, in.ConsumeIntegral<int64_t>());
      return;
    case 2:
      f.write_attr("/meta", name, in.ConsumeFloatingPoint<double>());
      return;
    case 3:
      f.write_attr("/meta", name, in.ConsumeRandomLengthString(64));
      return;
    case 4: {
      std::vector<int64_t> v(in.ConsumeIntegralInRange<size_t>(0, 4));
      for (auto& x : v) x = in.ConsumeIntegralInRange<int64_t>(-5, 5000);
      f.write_attr("/meta", name, v);
      return;
    }
    default: {  // a plausible value
      const std::string n = name;
      if (n == "backbone") f.write_attr("/meta", name, std::string("ir18"));
      else if (n == "head") f.write_attr("/meta", name, std::string("arcface"));
      else f.write_attr("/meta", name, int64_t{in.ConsumeIntegralInRange<int>(-2, 600)});
    }
  }
}

void write_tensor(mf::h5::File& f, FuzzedDataProvider& in, const std::string& name,
                  std::vector<int64_t> shape) {
  switch (in.ConsumeIntegralInRange<int>(0, 4)) {
    case 0:
      return;  // missing
    case 1:      // another shape
      shape.assign(in.ConsumeIntegralInRange<size_t>(0, 4), 0);
      for (auto& d : shape) d = in.ConsumeIntegralInRange<int64_t>(0, 5);
      break;
    default:
      break;
  }
  int64_t n = 1;
  for (const int64_t d : shape) n *= d;
  std::vector<float> values(static_cast<size_t>(n));
  for (auto& v : values)
    v = in.ConsumeBool() ? in.ConsumeFloatingPoint<float>() : in.ConsumeProbability<float>();
  if (!values.empty() && in.ConsumeBool()) values[0] = std::numeric_limits<float>::quiet_NaN();
  f.write_floats(name, values.data(), shape);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const auto model = small_model();
  const std::string path = mf::fuzz::scratch("ck.h5");
  try {
    mf::h5::File f(path, mf::h5::File::Mode::kCreate);
    f.set_checksums(in.ConsumeBool());
    if (in.ConsumeBool()) {
      for (const char* attr : {"format_version", "backbone", "embedding_size", "width",
                               "input_size", "step", "epoch", "head", "config",
                               "verification_threshold", "best_score", "data_signature"})
        write_meta_attr(f, in, attr);
    }
    for (const auto& [name, v] : model->named_parameters())
      write_tensor(f, in, "/model/" + name, v.value().shape().to_vector());
    for (const auto& [name, t] : model->named_buffers())
      write_tensor(f, in, "/model/" + name, t.shape().to_vector());
    if (in.ConsumeBool()) write_tensor(f, in, "/model/" + in.ConsumeRandomLengthString(16), {2});
    if (in.ConsumeBool()) write_tensor(f, in, "/head/weight", {4, 4});
    if (in.ConsumeBool()) {
      std::vector<std::string> ids(in.ConsumeIntegralInRange<size_t>(0, 4));
      for (auto& s : ids) s = in.ConsumeRandomLengthString(8);
      f.write_strings("/identities", ids);
    }
  } catch (const mf::Error&) {
    return 0;  // the writer refused this layout (e.g. a name HDF5 cannot hold): nothing to read
  }
  try {
    mf::read_checkpoint_meta(path);
  } catch (const mf::Error&) {
  }
  try {
    auto target = small_model();
    auto head = std::make_shared<mf::Sequential>();
    std::vector<std::string> identities;
    mf::load_checkpoint(path, *target, head.get(), nullptr, &identities);
  } catch (const mf::Error&) {
  }
  return 0;
}
