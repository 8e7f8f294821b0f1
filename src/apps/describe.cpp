// `marginface describe`: a backbone's stages with parameter counts and forward GFLOPs per image.
#include <cstdio>
#include <string>

#include "apps/commands.h"
#include "layers/backbones/registry.h"
#include "util/args.h"

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

}  // namespace

int run_describe(const std::vector<std::string>& argv) {
  const BackboneRegistry& registry = builtin_backbones();
  std::string known;
  for (const auto& name : registry.names()) known += (known.empty() ? "" : ", ") + name;
  Args args("describe",
            "Prints a backbone's parameter count and forward GFLOPs (2 × multiply-adds of the\n"
            "convolutions and fully connected layers) per image, per stage and in total.");
  args.option("backbone", "registry name (" + known + ")", "", true);
  args.option("width", "channel width multiplier", "1");
  args.option("embedding-size", "embedding size D", "512");
  if (!args.parse(argv)) return 0;

  const std::string name = args.get("backbone");
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
