#include "layers/backbones/registry.h"

#include <string>

#include "layers/backbones/iresnet.h"
#include "layers/backbones/mobilefacenet.h"
#include "layers/backbones/sphereface.h"

namespace mf {

namespace {

double read_width(const Params& p) {
  return p.get_double_open_low("width", 1.0, 0.0, 16.0);
}
int64_t read_embedding_size(const Params& p) {
  return p.get_int("embedding_size", 512, 1, 65536);
}

void add_iresnet(BackboneRegistry& registry, int depth, bool se) {
  const std::string name = (se ? "ir_se" : "ir") + std::to_string(depth);
  const std::string summary = std::string(se ? "IR-SE-" : "IResNet-") + std::to_string(depth) +
                              (se ? " (IResNet with squeeze-excitation)"
                                  : " (insightface iresnet" + std::to_string(depth) + ")");
  registry.add(
      name,
      [depth, se](const Params& p, Rng& rng) -> std::unique_ptr<Backbone> {
        IResNetConfig c;
        c.layers = iresnet_depth(depth);
        c.width = read_width(p);
        c.embedding_size = read_embedding_size(p);
        c.dropout = static_cast<float>(p.get_double("dropout", 0.0, 0.0, 0.99));
        if (se) c.se_reduction = p.get_int("se_reduction", 16, 1, 1024);
        return std::make_unique<IResNet>(c, rng);
      },
      summary);
}

}  // namespace

void register_builtin_backbones(BackboneRegistry& registry) {
  for (int depth : {18, 34, 50, 100}) {
    add_iresnet(registry, depth, false);
    add_iresnet(registry, depth, true);
  }
  registry.add(
      "mobilefacenet",
      [](const Params& p, Rng& rng) -> std::unique_ptr<Backbone> {
        MobileFaceNetConfig c;
        c.width = read_width(p);
        c.embedding_size = read_embedding_size(p);
        return std::make_unique<MobileFaceNet>(c, rng);
      },
      "MobileFaceNet (insightface mbf: blocks 1,4,6,2, scale 2)");
  registry.add(
      "sphere20",
      [](const Params& p, Rng& rng) -> std::unique_ptr<Backbone> {
        SphereNetConfig c;
        c.width = read_width(p);
        c.embedding_size = read_embedding_size(p);
        return std::make_unique<SphereNet>(c, rng);
      },
      "SphereFace-20 (no BN, PReLU; 112×96 input)");
}

const BackboneRegistry& builtin_backbones() {
  static const BackboneRegistry registry = [] {
    BackboneRegistry r("backbone");
    register_builtin_backbones(r);
    return r;
  }();
  return registry;
}

}  // namespace mf
