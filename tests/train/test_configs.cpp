// The committed configs: every training config passes check_config, and configs/reference.yaml
// lists every key the trainer reads, each at the default the code uses.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "io/config.h"
#include "losses/head.h"
#include "support/temp_dir.h"
#include "train/trainer.h"
#include "util/params.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

const fs::path kConfigs = fs::path(MF_FIXTURE_DIR) / ".." / ".." / "configs";

TEST(Configs, every_training_config_is_valid) {
  int checked = 0;
  for (const auto& e : fs::directory_iterator(kConfigs)) {
    if (e.path().extension() != ".yaml") continue;
    const Config c = Config::load(e.path().string());
    if (c.has("ablation")) continue;  // ablation configs: `ablate --check` (tests/apps)
    SCOPED_TRACE(e.path().string());
    EXPECT_NO_THROW(check_config(c));
    ++checked;
  }
  EXPECT_GE(checked, 3);  // reference, demo_small, arcface_ir50
}

// Numbers compare as numbers ("64" = "64.0"); everything else as text.
bool same_value(const std::string& a, const std::string& b) {
  char *end_a = nullptr, *end_b = nullptr;
  const double x = std::strtod(a.c_str(), &end_a), y = std::strtod(b.c_str(), &end_b);
  if (!a.empty() && !b.empty() && *end_a == 0 && *end_b == 0) return x == y;
  return a == b;
}

TEST(Configs, reference_lists_every_key_the_trainer_reads_at_its_default) {
  TempDir dir;
  // The smallest config: only what has no default. Every other key is read at its default.
  const Config minimal = Config::parse("data: {train: [faces]}\n", dir.path("minimal.yaml"));
  Params::KeyRecorder recorder;
  check_config(minimal);
  const auto& read = recorder.keys();
  ASSERT_GT(read.size(), 40u);
  const Config reference = Config::load((kConfigs / "reference.yaml").string());
  for (const auto& [key, def] : read) {
    SCOPED_TRACE(key);
    const auto dot = key.find('.');
    const std::string section = dot == std::string::npos ? "" : key.substr(0, dot);
    const std::string name = dot == std::string::npos ? key : key.substr(dot + 1);
    const Params p = reference.section(section);
    ASSERT_TRUE(p.has(name)) << "configs/reference.yaml lacks " << key << " (default " << def
                             << ")";
    if (key == "data.train") continue;  // no default: the example sources
    if (def == "[]") continue;          // lists: presence is enough
    const std::string value = p.get_string(name, "");
    EXPECT_TRUE(same_value(value, def)) << "configs/reference.yaml has " << key << ": " << value
                                        << ", the code's default is " << def;
  }
  // And nothing more: the reference passes the same checks as any config.
  check_config(reference);
}

// Every head's keys at their defaults, as the comment block "# head keys" of reference.yaml lists
// them (one line per head: "#   type: key default, key default, …"), against what each
// registered head's builder reads.
TEST(Configs, reference_lists_every_heads_keys_at_their_defaults) {
  std::ifstream in(kConfigs / "reference.yaml");
  std::map<std::string, std::map<std::string, std::string>> listed;  // type → key → default
  bool inside = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# head keys", 0) == 0) {
      inside = true;
    } else if (inside && line.rfind("#   ", 0) == 0) {
      const size_t colon = line.find(':');
      auto& keys = listed[line.substr(4, colon - 4)];
      std::istringstream rest(line.substr(colon + 1));
      for (std::string item; std::getline(rest, item, ',');) {
        std::istringstream kv(item);
        std::string key, value;
        kv >> key >> value;
        if (!key.empty()) keys[key] = value;
      }
    } else {
      inside = false;
    }
  }
  for (const std::string& type : head_registry().names()) {
    SCOPED_TRACE(type);
    Params::KeyRecorder recorder;
    Rng rng(1);
    head_registry().create(type, Params("head"), 8, 5, rng);
    std::map<std::string, std::string> read;
    for (const auto& [key, def] : recorder.keys()) read[key.substr(key.find('.') + 1)] = def;
    std::string all;
    for (const auto& [key, def] : read) all += key + " " + def + ", ";
    EXPECT_TRUE(listed.count(type)) << "reference.yaml's head keys lack " << type << ": " << all;
    EXPECT_EQ(listed[type].size(), read.size()) << all;
    for (const auto& [key, def] : read)
      EXPECT_TRUE(listed[type].count(key) && same_value(listed[type][key], def))
          << key << ": listed " << listed[type][key] << ", the code's default is " << def;
  }
  EXPECT_EQ(listed.size(), head_registry().names().size());
}

}  // namespace
}  // namespace mf::test
