#include "support/checkpoints.h"

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

}  // namespace mf::test
