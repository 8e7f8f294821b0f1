// Pair-list parsing: the real LFW lists (skipped without ../shared) and malformed files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "eval/pairs.h"
#include "support/fixtures.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace mf::eval {
namespace {

namespace fs = std::filesystem;
using test::error_of;
using test::TempDir;

std::string lfw_dir() {
  return test::shared_data_dir() + "/lfw";
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(LfwPairs, OfficialView2) {
  const std::string file = lfw_dir() + "/pairs.txt";
  if (!fs::exists(file)) GTEST_SKIP() << "LFW lists not found at " << file << " (../shared absent)";
  const PairList list = read_lfw_pairs(file, "/faces");
  EXPECT_EQ(list.protocol, "lfw-view2");
  EXPECT_EQ(list.num_folds, 10);
  ASSERT_EQ(list.pairs.size(), 6000u);
  EXPECT_EQ(list.num_same(), 3000);
  EXPECT_EQ(list.images.size(), 7701u);  // as issue 5 states
  std::vector<int> per_fold(10, 0), same_per_fold(10, 0);
  for (size_t i = 0; i < list.pairs.size(); ++i) {
    const Pair& p = list.pairs[i];
    ASSERT_EQ(p.fold, int(i / 600));
    ASSERT_EQ(p.same, i % 600 < 300) << "pair " << i;
    ++per_fold[p.fold];
    same_per_fold[p.fold] += p.same;
    ASSERT_EQ(list.images[p.a], p.path_a);
    ASSERT_EQ(list.images[p.b], p.path_b);
  }
  EXPECT_EQ(per_fold, std::vector<int>(10, 600));
  EXPECT_EQ(same_per_fold, std::vector<int>(10, 300));
  // Line 2: Abel_Pacheco 1 4; line 302 (the first mismatched pair): Abdel_Madi_Shabneh 1
  // Dean_Barker 1.
  EXPECT_EQ(list.pairs[0].path_a, "/faces/Abel_Pacheco/Abel_Pacheco_0001.jpg");
  EXPECT_EQ(list.pairs[0].path_b, "/faces/Abel_Pacheco/Abel_Pacheco_0004.jpg");
  EXPECT_EQ(list.pairs[0].line, 2);
  EXPECT_EQ(list.pairs[300].path_a, "/faces/Abdel_Madi_Shabneh/Abdel_Madi_Shabneh_0001.jpg");
  EXPECT_EQ(list.pairs[300].path_b, "/faces/Dean_Barker/Dean_Barker_0001.jpg");
  EXPECT_EQ(list.pairs[300].line, 302);
  EXPECT_EQ(list.pairs.back().line, 6001);
  const std::set<std::string> unique(list.images.begin(), list.images.end());
  EXPECT_EQ(unique.size(), list.images.size());

  const std::vector<uint8_t> labels = list.labels();
  const std::vector<int> folds = list.folds();
  EXPECT_EQ(labels.size(), 6000u);
  EXPECT_EQ(folds[5999], 9);
}

TEST(LfwPairs, Every7701ImageExistsInAlignedLfw) {
  const std::string file = lfw_dir() + "/pairs.txt";
  const std::string root = test::shared_data_dir() + "/aligned/lfw";
  if (!fs::exists(file) || !fs::exists(root))
    GTEST_SKIP() << "LFW lists or aligned images not found under " << test::shared_data_dir();
  const PairList list = read_lfw_pairs(file, root);
  int missing = 0;
  for (const std::string& image : list.images) missing += !fs::exists(image);
  EXPECT_EQ(missing, 0);
}

TEST(LfwPairs, OfficialView1) {
  const std::string test_file = lfw_dir() + "/pairsDevTest.txt";
  const std::string train_file = lfw_dir() + "/pairsDevTrain.txt";
  if (!fs::exists(test_file) || !fs::exists(train_file))
    GTEST_SKIP() << "LFW View 1 lists not found in " << lfw_dir() << " (../shared absent)";
  const PairList dev_test = read_lfw_pairs(test_file, "");
  EXPECT_EQ(dev_test.protocol, "lfw-view1");
  EXPECT_EQ(dev_test.num_folds, 1);
  ASSERT_EQ(dev_test.pairs.size(), 1000u);
  EXPECT_EQ(dev_test.num_same(), 500);
  EXPECT_TRUE(dev_test.pairs[499].same);
  EXPECT_FALSE(dev_test.pairs[500].same);
  EXPECT_EQ(dev_test.pairs[0].path_a, "Abdullah_Gul/Abdullah_Gul_0013.jpg");
  for (const Pair& p : dev_test.pairs) ASSERT_EQ(p.fold, 0);
  const PairList dev_train = read_lfw_pairs(train_file, "");
  EXPECT_EQ(dev_train.pairs.size(), 2200u);
  EXPECT_EQ(dev_train.num_same(), 1100);
}

TEST(LfwPairs, SpacesCrlfBlankLinesAndSharedImages) {
  TempDir dir;
  const std::string file =
      dir.write("p.txt", "2 1\r\nAnn 1 2\r\nAnn 1 Bob 3\r\n\r\nAnn  2\t1\nBob 3   Ann 1\n\n\n");
  const PairList list = read_lfw_pairs(file, "root/");
  ASSERT_EQ(list.pairs.size(), 4u);
  EXPECT_EQ(list.num_folds, 2);
  EXPECT_EQ(list.pairs[2].fold, 1);
  EXPECT_EQ(list.pairs[2].line, 5);
  EXPECT_EQ(list.pairs[0].path_a, "root/Ann/Ann_0001.jpg");
  EXPECT_EQ(list.pairs[1].path_b, "root/Bob/Bob_0003.jpg");
  // Ann 1, Ann 2, Bob 3: three images for eight image uses.
  ASSERT_EQ(list.images.size(), 3u);
  EXPECT_EQ(list.pairs[0].a, list.pairs[1].a);
  EXPECT_EQ(list.pairs[2].a, list.pairs[0].b);
  EXPECT_EQ(list.pairs[3].a, list.pairs[1].b);
}

TEST(LfwPairs, MalformedFilesNameFileAndLine) {
  TempDir dir;
  struct Bad {
    const char* name;
    const char* text;
    const char* where;  // expected "file:line"
    const char* what;   // expected in the message
  };
  const Bad cases[] = {
      {"short.txt", "2 1\nAnn 1 2\nAnn 1 Bob 3\nAnn 2 1\n", ":4:", "ends after 3 pairs"},
      {"long.txt", "1 1\nAnn 1 2\nAnn 1 Bob 3\nAnn 2 3\n", ":4:", "more pairs than the header"},
      {"kind.txt", "1 2\nAnn 1 2\nAnn 1 Bob 3\nAnn 2 3\nBob 1 Ann 2\n",
       ":3:", "expected a matched pair"},
      {"third_party.txt", "3\nAnn 1 2\nAnn 1 Bob 3\n", ":3:", "announces 3 matched then 3"},
      {"number.txt", "1\nAnn 1 x\nAnn 1 Bob 3\n", ":2:", "image number 'x'"},
      {"zero.txt", "1\nAnn 0 2\nAnn 1 Bob 3\n", ":2:", "image number '0'"},
      {"fields.txt", "1\nAnn 1 2 3 4\nAnn 1 Bob 3\n", ":2:", "got 5 fields"},
      {"header.txt", "ten 300\nAnn 1 2\n", ":1:", "number of folds 'ten'"},
      {"header3.txt", "10 300 1\n", ":1:", "expected a header"},
  };
  for (const Bad& bad : cases) {
    const std::string file = dir.write(bad.name, bad.text);
    const std::string message = error_of([&] { read_lfw_pairs(file, ""); });
    EXPECT_TRUE(contains(message, file + bad.where)) << bad.name << ": " << message;
    EXPECT_TRUE(contains(message, bad.what)) << bad.name << ": " << message;
  }
  const std::string empty = dir.write("empty.txt", "\n\n");
  EXPECT_TRUE(contains(error_of([&] { read_lfw_pairs(empty, ""); }), "empty file"));
  const std::string missing = (fs::temp_directory_path() / "mf_no_such_pairs.txt").string();
  EXPECT_TRUE(contains(error_of([&] { read_lfw_pairs(missing, ""); }), missing));
}

TEST(GenericPairs, PathsLabelsAndConsecutiveFolds) {
  TempDir dir;
  std::string text = "# a comment\n";
  for (int i = 0; i < 23; ++i) {
    text += 'a';
    text += std::to_string(i % 5) + ".jpg /abs/b";
    text += std::to_string(i) + ".png ";
    text += std::to_string(i % 2) + "\n";
  }
  const PairList list = read_generic_pairs(dir.write("g.txt", text), "data");
  EXPECT_EQ(list.protocol, "pairs");
  EXPECT_EQ(list.num_folds, 10);
  ASSERT_EQ(list.pairs.size(), 23u);
  EXPECT_EQ(list.pairs[0].path_a, "data/a0.jpg");
  EXPECT_EQ(list.pairs[0].path_b, "/abs/b0.png");  // absolute paths are kept
  EXPECT_FALSE(list.pairs[0].same);
  EXPECT_TRUE(list.pairs[1].same);
  EXPECT_EQ(list.pairs[0].line, 2);
  EXPECT_EQ(list.images.size(), 5u + 23u);
  // KFold(10) sizes for 23: 3 3 3 2 2 2 2 2 2 2.
  EXPECT_EQ(list.pairs[2].fold, 0);
  EXPECT_EQ(list.pairs[3].fold, 1);
  EXPECT_EQ(list.pairs[9].fold, 3);
  EXPECT_EQ(list.pairs[22].fold, 9);
}

TEST(GenericPairs, ExplicitFolds) {
  TempDir dir;
  const PairList list =
      read_generic_pairs(dir.write("g.txt", "a b 1 0\nc d 0 1\ne f 1 2\ng h 0 2\n"), "");
  EXPECT_EQ(list.num_folds, 3);
  EXPECT_EQ(list.folds(), (std::vector<int>{0, 1, 2, 2}));
  EXPECT_EQ(list.labels(), (std::vector<uint8_t>{1, 0, 1, 0}));
}

TEST(GenericPairs, MalformedFilesNameFileAndLine) {
  TempDir dir;
  struct Bad {
    const char* name;
    const char* text;
    const char* where;
    const char* what;
  };
  const Bad cases[] = {
      {"label.txt", "a b 1 0\nc d 2 1\n", ":2:", "label '2'"},
      {"fold.txt", "a b 1 0\nc d 0 10\n", ":2:", "fold '10'"},
      {"mixed.txt", "a b 1 0\n\nc d 0\n", ":3:", "on line 1"},
      {"fields.txt", "a b\n", ":1:", "got 2 fields"},
  };
  for (const Bad& bad : cases) {
    const std::string file = dir.write(bad.name, bad.text);
    const std::string message = error_of([&] { read_generic_pairs(file, ""); });
    EXPECT_TRUE(contains(message, file + bad.where)) << bad.name << ": " << message;
    EXPECT_TRUE(contains(message, bad.what)) << bad.name << ": " << message;
  }
  EXPECT_TRUE(contains(error_of([&] { read_generic_pairs(dir.write("few.txt", "a b 1\n"), ""); }),
                       "too few"));
  EXPECT_TRUE(contains(
      error_of([&] { read_generic_pairs(dir.write("gap.txt", "a b 1 0\nc d 0 2\n"), ""); }),
      "fold 1 has no pairs"));
  EXPECT_TRUE(contains(error_of([&] { read_generic_pairs(dir.write("none.txt", "# x\n"), ""); }),
                       "no pairs"));
}

}  // namespace
}  // namespace mf::eval
