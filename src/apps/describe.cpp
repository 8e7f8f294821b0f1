// `marginface describe`: a backbone's stages with parameter counts and forward GFLOPs per image;
// with --target-logits, the heads' target-logit figure (docs/target_logits.png).
#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "layers/backbones/registry.h"
#include "train/target_logit_figure.h"
#include "util/args.h"
#include "util/error.h"

namespace mf::apps {

namespace {

// 43590848 → "43,590,848"
std::string with_commas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string shape_text(const Shape& s) {
  std::string out;
  for (int i = 0; i < s.rank(); ++i) out += (i ? "×" : "") + std::to_string(s[i]);
  return out;
}

// The built-in classifier heads at the ArcFace paper's settings (Deng et al. 2019, Fig. 4(b) and
// Table 1's combined margins), past every warm-up; SphereFace at λ = λ_min = 5, its annealed end;
// the newer heads at their papers' defaults. Heads whose target logit is another's share its
// curve and label (test_heads_cases.cpp checks that they are equal): AdaCos has no margin,
// CurricularFace's and Sub-center ArcFace's targets are ArcFace's (they differ in the negatives
// and in the pooled cosine), and L-Softmax is SphereFace at unit norms. MagFace is drawn at the
// middle of its norm range (m = 0.625), AdaFace at the batch's mean norm (ẑ = 0), ElasticFace
// at its mean margin.
int write_head_figure(const std::string& path) {
  auto params = [](std::vector<std::pair<std::string, std::string>> kv) {
    Params p("head");
    for (const auto& [k, v] : kv) p.set(k, v, "--target-logits");
    return p;
  };
  const int64_t step = 1'000'000;
  const std::vector<TargetLogitCurve> curves{
      {"Softmax = AdaCos", "softmax", params({}), step},
      {"SphereFace = L-Softmax (m=4, lambda=5)", "sphereface", params({}), step},
      {"ArcFace = CurricularFace = Sub-center (m=0.5)", "arcface", params({{"m", "0.5"}}), step},
      {"CosFace (m=0.35)", "cosface", params({{"m", "0.35"}}), step},
      {"CM1 (1, 0.3, 0.2)", "combined", params({{"m1", "1"}, {"m2", "0.3"}, {"m3", "0.2"}}), step},
      {"CM2 (0.9, 0.4, 0.15)", "combined", params({{"m1", "0.9"}, {"m2", "0.4"}, {"m3", "0.15"}}),
       step},
      {"MagFace (mid norm, m=0.625)", "magface", params({}), step},
      {"AdaFace (mean norm: cos - 0.4)", "adaface", params({}), step},
      {"ElasticFace-Arc (mean m=0.5, no guard)", "elasticface", params({}), step},
  };
  write_target_logit_figure(path, curves);
  std::printf("wrote %s (%zu heads)\n", path.c_str(), curves.size());
  return 0;
}

}  // namespace

int run_describe(const std::vector<std::string>& argv) {
  const BackboneRegistry& registry = builtin_backbones();
  std::string known;
  for (const auto& name : registry.names()) known += (known.empty() ? "" : ", ") + name;
  Args args("describe",
            "Prints a backbone's parameter count and forward GFLOPs (2 × multiply-adds of the\n"
            "convolutions and fully connected layers) per image, per stage and in total.\n"
            "With --target-logits, draws the built-in heads' target logit against theta instead.");
  args.option("backbone", "registry name (" + known + ")");
  args.option("width", "channel width multiplier", "1");
  args.option("embedding-size", "embedding size D", "512");
  args.option("target-logits", "write the heads' target-logit figure to this PNG");
  if (!args.parse(argv)) return 0;
  if (!args.get("target-logits").empty()) return write_head_figure(args.get("target-logits"));

  const std::string name = args.get("backbone");
  MF_CHECK(!name.empty(), "--backbone is required (one of ", known, ")");
  Params params("model");
  params.set("width", args.get("width"), "--width");
  params.set("embedding_size", args.get("embedding-size"), "--embedding-size");
  Rng rng(0);
  const auto backbone = registry.create(name, params, rng);

  std::printf("%s: %s\ninput 3×%lld×%lld, embedding %lld, width %s\n\n", name.c_str(),
              registry.summary(name).c_str(), static_cast<long long>(backbone->input_height()),
              static_cast<long long>(backbone->input_width()),
              static_cast<long long>(backbone->embedding_size()), args.get("width").c_str());
  std::printf("%-10s %-34s %-14s %14s %10s\n", "stage", "layers", "output", "parameters", "GFLOPs");
  int64_t total_params = 0, total_macs = 0;
  for (const StageInfo& s : backbone->stages()) {
    // printf pads by bytes; pad by characters so the UTF-8 '×' keeps the columns straight.
    auto pad = [](const std::string& text, size_t width) {
      size_t chars = 0;
      for (unsigned char ch : text) chars += (ch & 0xC0) != 0x80;
      return text + std::string(chars < width ? width - chars : 0, ' ');
    };
    std::printf("%-10s %s %s %14s %10.4f\n", s.name.c_str(), pad(s.summary, 34).c_str(),
                pad(shape_text(s.output), 14).c_str(), with_commas(s.parameters).c_str(),
                s.gflops());
    total_params += s.parameters;
    total_macs += s.macs;
  }
  std::printf("%-10s %-34s %-14s %14s %10.4f\n", "total", "", "", with_commas(total_params).c_str(),
              2e-9 * static_cast<double>(total_macs));
  int64_t trainable = 0;
  for (const Var& v : backbone->parameters()) trainable += v.value().numel();
  if (trainable != total_params)
    std::printf(
        "\n%s of the parameters are trainable (the rest are frozen, e.g. IResNet's "
        "BatchNorm1d scale).\n",
        with_commas(trainable).c_str());
  if (total_params != backbone->num_parameters())
    std::fprintf(stderr, "warning: stages add up to %lld parameters, the model has %lld\n",
                 static_cast<long long>(total_params),
                 static_cast<long long>(backbone->num_parameters()));
  return 0;
}

}  // namespace mf::apps
