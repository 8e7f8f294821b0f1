// The one list of built-in heads. A new head adds its file and one line here
// (no static registrars, so nothing depends on link order).
#include "losses/head.h"
#include "losses/heads.h"

namespace mf {

void register_builtin_heads(HeadRegistry& registry) {
  register_softmax(registry);
  register_center(registry);
  register_sphereface(registry);
  register_normface(registry);
  register_cosface(registry);
  register_arcface(registry);
  register_combined(registry);
  register_contrastive(registry);
  register_triplet(registry);
  register_lsoftmax(registry);
  register_curricularface(registry);
  register_magface(registry);
  register_adaface(registry);
  register_subcenter_arcface(registry);
  register_elasticface(registry);
  register_adacos(registry);
}

}  // namespace mf
