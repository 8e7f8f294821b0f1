// Training data: the three source kinds, identity numbering across sources, skip/fail on bad
// images, samplers, augmentation, and determinism across loader thread counts.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <set>

#include "data/loader.h"
#include "support/temp_dir.h"
#include "util/error.h"

namespace mf::test {
namespace {

namespace fs = std::filesystem;

// A tiny face set on disk: `ids` identities × `per_id` 8×6 images whose pixels encode (id, image).
fs::path make_folder(const TempDir& dir, const std::string& name, int ids, int per_id) {
  const fs::path root = dir / name;
  for (int i = 0; i < ids; ++i) {
    fs::create_directories(root / ("person" + std::to_string(i)));
    for (int j = 0; j < per_id; ++j) {
      cv::Mat img(8, 6, CV_8UC3, cv::Scalar(10 * j, 20 * i, 200));  // B, G, R
      cv::imwrite((root / ("person" + std::to_string(i)) / (std::to_string(j) + ".png")).string(),
                  img);
    }
  }
  return root;
}

TEST(Dataset, folder_source_numbers_identities_in_sorted_order) {
  TempDir dir;
  const fs::path root = make_folder(dir, "folder", 3, 2);
  TrainingSet set(8, 6);
  set.add(open_source(root.string(), "", false));
  ASSERT_EQ(set.size(), 6);
  EXPECT_EQ(set.num_classes(), 3);
  EXPECT_EQ(set.identities()[2], "person2");
  EXPECT_EQ(set.label(5), 2);
  std::vector<float> img(3 * 8 * 6);
  set.load(3, img.data());  // person1/1.png: R = 200, G = 20, B = 10 → RGB order after loading
  EXPECT_NEAR(img[0], (200 - 127.5) / 127.5, 1e-6);
  EXPECT_NEAR(img[48], (20 - 127.5) / 127.5, 1e-6);
  EXPECT_NEAR(img[96], (10 - 127.5) / 127.5, 1e-6);
}

TEST(Dataset, sources_concatenate_with_offset_labels) {
  TempDir dir;
  const fs::path a = make_folder(dir, "concat_a", 2, 2);
  const fs::path list = dir / "list.txt";
  std::ofstream(list) << "# comment\nperson1/0.png 0\nperson0/1.png 1\n";
  TrainingSet set(8, 6);
  set.add(open_source(a.string(), "", false));
  set.add(open_source(list.string(), a.string(), false));
  EXPECT_EQ(set.num_classes(), 4);
  EXPECT_EQ(set.label(4), 2);
  EXPECT_EQ(set.label(5), 3);
  EXPECT_EQ(set.identities()[3], "person0");
}

TEST(Dataset, packed_source_reads_rgb_rows) {
  TempDir dir;
  const fs::path path = dir / "packed.h5";
  fs::create_directories(path.parent_path());
  std::vector<uint8_t> images(3 * 4 * 2 * 3);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<uint8_t>(i * 3);
  {
    h5::File f(path.string(), h5::File::Mode::kCreate);
    f.write_uint8("/images", images.data(), {3, 4, 2, 3});
    f.write_int64("/labels", {1, 0, 1});
    f.write_strings("/identities", {"a", "b"});
  }
  TrainingSet set(4, 2);
  set.add(open_source(path.string(), "", false));
  EXPECT_EQ(set.num_classes(), 2);
  std::vector<float> img(3 * 4 * 2);
  set.load(2, img.data());
  // Image 2, pixel (y=1, x=0), channel G: byte index 2·24 + (1·2 + 0)·3 + 1 = 55 → value 165.
  EXPECT_NEAR(img[1 * 8 + 1 * 2 + 0], (165 - 127.5) / 127.5, 1e-6);
}

TEST(Dataset, malformed_list_names_file_and_line) {
  TempDir dir;
  const fs::path list = dir / "bad_list.txt";
  fs::create_directories(list.parent_path());
  std::ofstream(list) << "a.png 0\nb.png x\n";
  try {
    open_list_source(list.string(), "", false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(list.string() + ":2"), std::string::npos) << e.what();
  }
}

TEST(Loader, bad_images_are_skipped_and_counted_or_fail_the_run) {
  TempDir dir;
  const fs::path root = make_folder(dir, "bad", 2, 4);
  std::ofstream(root / "person1" / "9.png") << "not a png";  // sorts last
  TrainingSet set(8, 6);
  set.add(open_source(root.string(), "", false));
  LoaderConfig cfg;
  cfg.batch_size = 9;
  cfg.shuffle = false;
  cfg.threads = 2;
  DataLoader loader(set, cfg);
  loader.start_epoch(0);
  auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  EXPECT_EQ(batch->images.dim(0), 8);  // 9 asked, 1 skipped
  EXPECT_EQ(loader.bad_images(), 1);
  EXPECT_NE(loader.bad_examples()[0].find("9.png"), std::string::npos);
  EXPECT_FALSE(loader.next().has_value());

  cfg.fail_on_bad_image = true;
  DataLoader strict(set, cfg);
  strict.start_epoch(0);
  try {
    strict.next();
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("9.png"), std::string::npos) << e.what();
  }
}

TEST(Loader, same_bits_for_any_thread_count_and_resume_point) {
  TempDir dir;
  const fs::path root = make_folder(dir, "determinism", 4, 5);
  TrainingSet set(8, 6);
  set.add(open_source(root.string(), "", false));
  auto run = [&](int threads, int64_t first_batch) {
    LoaderConfig cfg{.batch_size = 4,
                     .augment = {.flip = true, .crop = 2, .color_jitter = 0.2f},
                     .threads = threads,
                     .seed = 11};
    DataLoader loader(set, cfg);
    loader.start_epoch(3, first_batch);
    std::vector<float> all;
    while (auto b = loader.next())
      all.insert(all.end(), b->images.data(), b->images.data() + b->images.numel());
    return all;
  };
  const auto one = run(1, 0), three = run(3, 0), resumed = run(2, 2);
  EXPECT_EQ(one, three);
  ASSERT_EQ(one.size(), 5u * 4 * 3 * 8 * 6);
  EXPECT_TRUE(std::equal(resumed.begin(), resumed.end(), one.begin() + 2 * 4 * 3 * 8 * 6));
}

TEST(Sampler, random_batches_cover_each_index_once) {
  auto batches = random_batches(10, 3, true, 5, 0);
  ASSERT_EQ(batches.size(), 3u);  // the partial batch is dropped
  std::set<int64_t> seen;
  for (auto& b : batches) seen.insert(b.begin(), b.end());
  EXPECT_EQ(seen.size(), 9u);
  EXPECT_NE(random_batches(10, 3, true, 5, 0),
            random_batches(10, 3, true, 5, 1));  // per-epoch order
}

TEST(Sampler, pk_batches_hold_p_identities_of_k_images) {
  // Identities 0..5 with 1, 2, 3, 4, 5, 6 images; identity 0 has no pair and is never drawn.
  std::vector<int64_t> labels;
  for (int id = 0; id < 6; ++id)
    for (int j = 0; j <= id; ++j) labels.push_back(id);
  auto batches = pk_batches(labels, 3, 2, 1, 0);
  ASSERT_EQ(batches.size(), labels.size() / 6);
  for (const auto& b : batches) {
    ASSERT_EQ(b.size(), 6u);
    std::map<int64_t, int> count;
    for (auto i : b) count[labels[i]]++;
    EXPECT_EQ(count.size(), 3u);
    EXPECT_EQ(count.count(0), 0u);
    for (auto& [id, c] : count) EXPECT_EQ(c, 2);
  }
  EXPECT_THROW(pk_batches(labels, 6, 2, 1, 0), Error);  // only 5 identities have pairs
}

TEST(Augment, flip_mirrors_and_crop_shifts) {
  const int H = 2, W = 3;
  std::vector<float> img(3 * H * W);
  for (size_t i = 0; i < img.size(); ++i) img[i] = static_cast<float>(i) / 18.0f;
  // Find a seed whose first draw flips, then check the mirror.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Rng probe(seed);
    if (probe.uniform() >= 0.5) continue;
    auto copy = img;
    Rng rng(seed);
    augment(copy.data(), H, W, {.flip = true}, rng);
    EXPECT_FLOAT_EQ(copy[0], img[2]);
    EXPECT_FLOAT_EQ(copy[5], img[3]);
    break;
  }
  auto shifted = img;
  Rng rng(3);
  augment(shifted.data(), H, W, {.crop = 1}, rng);
  int black = 0;
  for (float v : shifted) black += v == -1.0f;
  int kept = 0;
  for (float v : shifted) kept += std::find(img.begin(), img.end(), v) != img.end();
  EXPECT_EQ(black + kept, 18);  // every pixel is either an input pixel or padding
}

TEST(Augment, grayscale_is_the_bt601_luma_in_every_channel) {
  const int H = 1, W = 2;
  // Pixel 0: R = 1, G = 0, B = −1 → Y = 0.299 − 0.114 = 0.185; pixel 1: all 0.5 → 0.5.
  std::vector<float> img{1.0f, 0.5f, 0.0f, 0.5f, -1.0f, 0.5f};
  Rng rng(1);
  augment(img.data(), H, W, {.grayscale = 1.0f}, rng);
  for (int ch = 0; ch < 3; ++ch) {
    EXPECT_NEAR(img[ch * 2 + 0], 0.185f, 1e-6f) << "channel " << ch;
    EXPECT_NEAR(img[ch * 2 + 1], 0.5f, 1e-6f) << "channel " << ch;
  }
  std::vector<float> untouched{1.0f, 0.5f, 0.0f, 0.5f, -1.0f, 0.5f};
  auto copy = untouched;
  augment(copy.data(), H, W, {.grayscale = 0.0f}, rng);
  EXPECT_EQ(copy, untouched);
}

TEST(Augment, rotation_moves_a_point_where_the_rotation_matrix_says) {
  const int H = 41, W = 41;
  for (uint64_t seed : {2u, 5u, 9u}) {
    // A bright 3×3 spot at (x0, y0) on black, in every channel.
    std::vector<float> img(3 * H * W, -1.0f);
    const int x0 = 30, y0 = 12;
    for (int ch = 0; ch < 3; ++ch)
      for (int dy = -1; dy <= 1; ++dy)
        for (int dx = -1; dx <= 1; ++dx) img[ch * H * W + (y0 + dy) * W + x0 + dx] = 1.0f;
    Rng probe(seed);
    const double degrees = 30.0 * probe.uniform(-1.0, 1.0);  // the only draw with rotation alone
    Rng rng(seed);
    augment(img.data(), H, W, {.rotation = 30.0f}, rng);
    // A counter-clockwise rotation by θ about c on the image (y down): x' − cx = cosθ (x − cx)
    // + sinθ (y − cy), y' − cy = −sinθ (x − cx) + cosθ (y − cy).
    const double t = degrees * M_PI / 180.0, c = (W - 1) / 2.0;
    const double xe = c + std::cos(t) * (x0 - c) + std::sin(t) * (y0 - c);
    const double ye = c - std::sin(t) * (x0 - c) + std::cos(t) * (y0 - c);
    const auto peak = std::max_element(img.begin(), img.begin() + H * W) - img.begin();
    EXPECT_NEAR(double(peak % W), xe, 1.0) << "seed " << seed << ", " << degrees << " degrees";
    EXPECT_NEAR(double(peak / W), ye, 1.0) << "seed " << seed << ", " << degrees << " degrees";
    EXPECT_EQ(img[0], -1.0f);  // the border stays black
  }
}

TEST(Augment, low_resolution_keeps_flat_images_and_blurs_fine_detail) {
  const int H = 16, W = 16;
  std::vector<float> flat(3 * H * W, 0.25f), checker(3 * H * W);
  for (int i = 0; i < 3 * H * W; ++i) checker[i] = ((i % W) + (i / W)) % 2 ? 1.0f : -1.0f;
  Rng rng(4);
  augment(flat.data(), H, W, {.low_resolution = 1.0f, .low_resolution_min = 0.25f}, rng);
  for (float v : flat) ASSERT_NEAR(v, 0.25f, 1e-6f);
  // A seed whose drawn side is at most half the size (draws: apply?, then the scale): area
  // averaging to ≤ 8×8 and back leaves the one-pixel checkerboard near 0.
  uint64_t seed = 0;
  for (;; ++seed) {
    Rng probe(seed);
    probe.uniform();
    if (0.25 + 0.75 * probe.uniform() <= 0.5) break;
  }
  Rng blur_rng(seed);
  augment(checker.data(), H, W, {.low_resolution = 1.0f, .low_resolution_min = 0.25f}, blur_rng);
  double mean_abs = 0;
  for (float v : checker) mean_abs += std::abs(v);
  EXPECT_LT(mean_abs / checker.size(), 0.5);
  // Scale 1 (low_resolution_min = 1) resizes to the same size: the image is unchanged.
  std::vector<float> same(3 * H * W);
  for (int i = 0; i < 3 * H * W; ++i) same[i] = float(i % 7) / 7.0f;
  auto copy = same;
  augment(copy.data(), H, W, {.low_resolution = 1.0f, .low_resolution_min = 1.0f}, rng);
  EXPECT_EQ(copy, same);
}

}  // namespace
}  // namespace mf::test
