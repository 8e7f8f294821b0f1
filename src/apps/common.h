// Helpers shared by the subcommands.
#pragma once

#include <memory>
#include <string>

#include "layers/backbones/backbone.h"

namespace mf::apps {

// The backbone a checkpoint was trained with (/meta backbone, width, embedding_size), its weights
// loaded from /model. Errors name the file and, for a missing or misshapen tensor, the tensor.
std::unique_ptr<Backbone> load_backbone(const std::string& checkpoint);

}  // namespace mf::apps
