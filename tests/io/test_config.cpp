// The YAML layer: values and where they came from, overrides, and errors naming file:line:key.
#include <gtest/gtest.h>

#include "io/config.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace mf::test {
namespace {

const char* kYaml =
    "seed: 7\n"
    "optim:\n"
    "  type: sgd\n"
    "  lr: 0.1\n"
    "  marign: 3\n"
    "schedule:\n"
    "  milestones: [20000, 28000]\n"
    "data:\n"
    "  augment:\n"
    "    flip: true\n";

TEST(Config, sections_flatten_with_locations) {
  Config c = Config::parse(kYaml, "cfg.yaml");
  Params optim = c.section("optim");
  EXPECT_DOUBLE_EQ(optim.get_double("lr", 0.0), 0.1);
  EXPECT_EQ(optim.get_string("type", ""), "sgd");
  EXPECT_EQ(c.section("schedule").get_string("milestones", ""), "[20000, 28000]");
  EXPECT_TRUE(c.section("data").get_bool("augment.flip", false));
  EXPECT_TRUE(c.section("data.augment").get_bool("flip", false));
  EXPECT_TRUE(c.section("absent").keys().empty());
  // The unread misspelled key is reported with its file, line and column.
  const std::string m = error_of([&] { optim.finish("optimizer 'sgd'"); });
  EXPECT_NE(m.find("optim.marign (cfg.yaml:5:3)"), std::string::npos) << m;
  EXPECT_NE(m.find("lr"), std::string::npos) << m;  // the known keys are listed
}

TEST(Config, range_errors_name_key_file_and_line) {
  Config c = Config::parse("head:\n  type: arcface\n  m: 4.5\n", "h.yaml");
  const std::string m = error_of([&] { c.section("head").get_double("m", 0.5, 0.0, 3.14159); });
  EXPECT_NE(m.find("head.m (h.yaml:3:3)"), std::string::npos) << m;
  EXPECT_NE(m.find("out of range"), std::string::npos) << m;
}

TEST(Config, set_overrides_and_creates_keys) {
  Config c = Config::parse(kYaml, "cfg.yaml",
                           {"optim.lr=0.02", "head.s=30", "schedule.milestones=[5, 9]"});
  Params optim = c.section("optim");
  EXPECT_DOUBLE_EQ(optim.get_double("lr", 0.0), 0.02);
  EXPECT_NE(optim.describe("lr").find("--set optim.lr"), std::string::npos) << optim.describe("lr");
  EXPECT_DOUBLE_EQ(c.section("head").get_double("s", 64), 30.0);
  EXPECT_EQ(c.section("schedule").get_string("milestones", ""), "[5, 9]");
  EXPECT_NE(c.to_yaml().find("0.02"), std::string::npos);
  EXPECT_THROW(Config::parse(kYaml, "cfg.yaml", {"nokey"}), Error);
  EXPECT_THROW(Config::parse(kYaml, "cfg.yaml", {"seed.x=1"}), Error);  // seed is not a section
}

TEST(Config, malformed_yaml_names_file_and_line) {
  const std::string m = error_of([] { Config::parse("optim:\n  lr: [0.1\n", "bad.yaml"); });
  EXPECT_NE(m.find("bad.yaml:"), std::string::npos) << m;
  EXPECT_NE(m.find("invalid YAML"), std::string::npos) << m;
  EXPECT_NE(error_of([] { Config::load("/nonexistent/x.yaml"); }).find("/nonexistent/x.yaml"),
            std::string::npos);
}

TEST(Config, unknown_section_is_reported) {
  Config c = Config::parse("optim: {lr: 0.1}\nhaed: {type: arcface}\n", "c.yaml");
  const std::string m = error_of([&] { c.check_sections({"optim", "head"}); });
  EXPECT_NE(m.find("c.yaml:2:1: unknown section 'haed'"), std::string::npos) << m;
  // Regression (issue "Nothing lost, nothing silently wrong", item 10): a section made by --set
  // was blamed on "c.yaml:0:0".
  Config d = Config::parse("optim: {lr: 0.1}\n", "c.yaml", {"zzz.a=1"});
  const std::string n = error_of([&] { d.check_sections({"optim", "head"}); });
  EXPECT_NE(n.find("--set zzz.a: unknown section 'zzz'"), std::string::npos) << n;
}

// Regression (issue "Nothing lost, nothing silently wrong", item 9): a key or section given twice
// was accepted and the last one won, hiding the first. Both places are named.
TEST(Config, duplicate_keys_and_sections_are_errors) {
  std::string m =
      error_of([] { Config::parse("optim:\n  lr: 0.1\n  momentum: 0.9\n  lr: 1.0\n", "d.yaml"); });
  EXPECT_NE(m.find("d.yaml:4:3: duplicate key 'lr' (first at line 2)"), std::string::npos) << m;
  m = error_of(
      [] { Config::parse("head: {type: arcface}\nseed: 1\nhead: {type: softmax}\n", "e.yaml"); });
  EXPECT_NE(m.find("e.yaml:3:1: duplicate key 'head' (first at line 1)"), std::string::npos) << m;
  m = error_of([] { Config::parse("data:\n  augment: {flip: true, flip: false}\n", "f.yaml"); });
  EXPECT_NE(m.find("duplicate key 'flip'"), std::string::npos) << m;
  // Found by fuzz/fuzz_config (fuzz/regressions/fuzz_config/): a key that is a list or a map threw
  // yaml-cpp's "bad conversion" from deep inside the loader.
  m = error_of([] { Config::parse("optim:\n  [lr]: 0.1\n", "g.yaml"); });
  EXPECT_NE(m.find("g.yaml:2:3: a key must be a plain name"), std::string::npos) << m;
  m = error_of([] { Config::parse("optim: {lr: 0.1}\n", "h.yaml", {"data={[a]: 1}"}); });
  EXPECT_NE(m.find("a key must be a plain name"), std::string::npos) << m;
}

}  // namespace
}  // namespace mf::test
