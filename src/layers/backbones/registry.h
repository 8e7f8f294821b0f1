// Backbones by name, for configs (`model.backbone: ir50`) and `marginface describe`.
//
//   ir18 ir34 ir50 ir100            IResNet (iresnet.h)       width, embedding_size, dropout
//   ir_se18 ir_se34 ir_se50 ir_se100  IR-SE (iresnet.h)       width, embedding_size, dropout,
//                                                             se_reduction (default 16)
//   mobilefacenet                   insightface mbf            width, embedding_size
//   sphere20                        SphereFace-20 (112×96)     width, embedding_size
//
// width (default 1) multiplies every channel count; embedding_size defaults to 512.
#pragma once

#include "layers/backbones/backbone.h"
#include "tensor/rng.h"
#include "util/registry.h"

namespace mf {

using BackboneRegistry = Registry<Backbone, Rng&>;

// Adds the built-in backbones above to `registry`.
void register_builtin_backbones(BackboneRegistry& registry);

// A registry holding the built-in backbones, filled on first use.
const BackboneRegistry& builtin_backbones();

}  // namespace mf
