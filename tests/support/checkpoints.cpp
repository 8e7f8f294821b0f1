#include "support/checkpoints.h"

#include "h5/file.h"
#include "io/checkpoint.h"
#include "layers/backbones/registry.h"
#include "util/params.h"

namespace mf::test {

std::string save_tiny_checkpoint(const std::string& path, const std::string& backbone,
                                 uint64_t seed, std::optional<double> threshold,
                                 const std::string& threshold_source) {
  Params p("test");
  p.set("width", "0.0625");
  p.set("embedding_size", "16");
  Rng rng(seed);
  auto net = builtin_backbones().create(backbone, p, rng);
  CheckpointContents contents;
  contents.meta.backbone = backbone;
  contents.meta.width = 0.0625;
  contents.meta.embedding_size = 16;
  contents.meta.verification_threshold = threshold;
  contents.meta.verification_threshold_source = threshold_source;
  contents.model = net.get();
  save_checkpoint(path, contents);
  return path;
}

std::vector<float> checkpoint_values(const std::string& path) {
  h5::File f(path, h5::File::Mode::kRead);
  std::vector<float> all;
  for (const char* group : {"/model", "/head"})
    for (const auto& name : f.list(group)) {
      const Tensor t = f.read_tensor(std::string(group) + "/" + name);
      all.insert(all.end(), t.data(), t.data() + t.numel());
    }
  return all;
}

}  // namespace mf::test
