// Batches for training: samplers, augmentation and a threaded loader.
//
// Determinism: the batches of an epoch depend only on (seed, epoch); each image's augmentation
// only on (seed, epoch, sample index). Worker threads decode ahead in any order, but next() hands
// batches out in sequence, so the same seed gives the same bits for any number of threads.
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "data/dataset.h"
#include "tensor/rng.h"
#include "tensor/tensor.h"

namespace mf {

// Random batches: a seeded permutation (or the identity order) cut into full batches; the last
// partial batch is dropped (BatchNorm needs full batches).
std::vector<std::vector<int64_t>> random_batches(int64_t n, int64_t batch_size, bool shuffle,
                                                 uint64_t seed, int64_t epoch);
// P identities × K images per batch (FaceNet / dlib style), for triplet and contrastive losses.
// Identities with a single image are never chosen (no positive pair); an identity with fewer
// than K images is sampled with replacement. Batches per epoch: n / (P·K).
std::vector<std::vector<int64_t>> pk_batches(const std::vector<int64_t>& labels, int64_t P,
                                             int64_t K, uint64_t seed, int64_t epoch);

struct AugmentConfig {
  bool flip = false;  // horizontal mirror with probability 1/2
  int crop = 0;       // pad by `crop` pixels (zero = black) and crop back at a random offset
  float color_jitter = 0.0f;  // brightness and contrast scaled by U(1 − j, 1 + j)
  // With this probability the image becomes grey (ITU-R BT.601 luma in all three channels): a
  // third of the shared training faces are greyscale while LFW is colour.
  float grayscale = 0.0f;
  // With this probability the image is shrunk to a side of U(low_resolution_min, 1) × its size
  // and enlarged back (bilinear, as insightface's DALI pipeline blurs): robustness to low-quality
  // test photos.
  float low_resolution = 0.0f;
  float low_resolution_min = 0.25f;
  float rotation = 0.0f;  // rotate by U(−r, r) degrees about the centre (black border)
};
// Applies augmentation to one normalised image (3, H, W) in place.
void augment(float* image, int H, int W, const AugmentConfig& config, Rng& rng);

struct LoaderConfig {
  int64_t batch_size = 64;
  bool shuffle = true;
  std::string sampler = "random";  // or "pk"
  int64_t p = 16, k = 4;           // for the pk sampler
  AugmentConfig augment;
  int threads = 2;
  int prefetch = 4;                // batches decoded ahead
  bool fail_on_bad_image = false;  // otherwise skip the image, count it and warn once
  uint64_t seed = 0;
  // Data-parallel runs: this process loads only its slice of each global batch, images
  // [B·rank/ranks, B·(rank+1)/ranks) of it. The global batches and each image's augmentation stay
  // functions of (seed, epoch, index), so N processes together see what one process sees.
  int rank = 0, ranks = 1;
};

struct Batch {
  Tensor images;  // (N, 3, H, W); N < batch_size when images were skipped
  std::vector<int64_t> labels;
  std::vector<int64_t> indices;  // sample indices in the TrainingSet
};

class DataLoader {
 public:
  DataLoader(const TrainingSet& data, const LoaderConfig& config);
  ~DataLoader();
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  int64_t batches_per_epoch() const;
  int64_t batch_size() const { return config_.batch_size; }  // p × k for the pk sampler; global
  // Starts producing epoch `epoch` from batch `first_batch` (resume in the middle of an epoch).
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // The next batch of the epoch, or nullopt at its end. Rethrows a worker's error (a bad image
  // with fail_on_bad_image, naming the file).
  std::optional<Batch> next();

  int64_t bad_images() const;                     // distinct unreadable images so far
  std::vector<std::string> bad_examples() const;  // the first few, with their errors

 private:
  void stop();
  void work();
  Batch make_batch(int64_t b);

  const TrainingSet& data_;
  LoaderConfig config_;
  std::vector<std::vector<int64_t>> batches_;
  int64_t epoch_ = 0;
  std::vector<std::thread> workers_;
  std::atomic<int64_t> next_to_make_{0};
  int64_t next_to_give_ = 0;
  bool stopping_ = false;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> errors_;
  mutable std::mutex mutex_;
  std::condition_variable produced_, consumed_;
  std::set<int64_t> bad_;
  std::vector<std::string> bad_examples_;
};

}  // namespace mf
