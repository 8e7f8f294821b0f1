#include "apps/common.h"

#include <sstream>

#include "io/checkpoint.h"
#include "layers/backbones/registry.h"
#include "tensor/rng.h"
#include "util/params.h"

namespace mf::apps {

std::unique_ptr<Backbone> load_backbone(const std::string& checkpoint) {
  const CheckpointMeta meta = read_checkpoint_meta(checkpoint);
  Params p("checkpoint");
  std::ostringstream width;
  width.precision(17);  // std::to_string keeps 6 decimals: a width of 1/3 would build other sizes
  width << meta.width;
  p.set("width", width.str(), checkpoint + " /meta");
  p.set("embedding_size", std::to_string(meta.embedding_size), checkpoint + " /meta");
  Rng rng(0);
  auto backbone = builtin_backbones().create(meta.backbone, p, rng);
  load_checkpoint(checkpoint, *backbone);
  return backbone;
}

}  // namespace mf::apps
