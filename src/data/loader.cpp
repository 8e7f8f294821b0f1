#include "data/loader.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <opencv2/imgproc.hpp>

#include "util/error.h"

namespace mf {

namespace {
// Mixes (seed, epoch, index) into one generator seed (splitmix-style finaliser).
uint64_t mix(uint64_t seed, uint64_t a, uint64_t b) {
  uint64_t z = seed ^ (a * 0x9e3779b97f4a7c15ULL) ^ (b * 0xc2b2ae3d27d4eb4fULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

template <class T>
void shuffle(std::vector<T>& v, Rng& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng.below(i)]);
}
}  // namespace

std::vector<std::vector<int64_t>> random_batches(int64_t n, int64_t batch_size, bool do_shuffle,
                                                 uint64_t seed, int64_t epoch) {
  MF_CHECK(batch_size > 0, "batch size must be positive");
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  if (do_shuffle) {
    Rng rng(mix(seed, 1, epoch));
    shuffle(order, rng);
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t start = 0; start + batch_size <= n; start += batch_size)
    batches.emplace_back(order.begin() + start, order.begin() + start + batch_size);
  return batches;
}

std::vector<std::vector<int64_t>> pk_batches(const std::vector<int64_t>& labels, int64_t P,
                                             int64_t K, uint64_t seed, int64_t epoch) {
  MF_CHECK(P >= 2 && K >= 2, "pk sampler: p and k must both be at least 2 (got p=", P, ", k=", K,
           ")");
  std::map<int64_t, std::vector<int64_t>> by_label;
  for (int64_t i = 0; i < static_cast<int64_t>(labels.size()); ++i)
    by_label[labels[i]].push_back(i);
  std::vector<int64_t> eligible;
  for (const auto& [label, idx] : by_label)
    if (idx.size() >= 2) eligible.push_back(label);
  MF_CHECK(static_cast<int64_t>(eligible.size()) >= P, "pk sampler: ", eligible.size(),
           " identities have two or more images, fewer than p = ", P);
  Rng rng(mix(seed, 2, epoch));
  const int64_t count = static_cast<int64_t>(labels.size()) / (P * K);
  std::vector<std::vector<int64_t>> batches;
  std::vector<int64_t> queue;
  for (int64_t b = 0; b < count; ++b) {
    std::vector<int64_t> batch;
    std::set<int64_t> used;
    while (static_cast<int64_t>(used.size()) < P) {
      if (queue.empty()) {
        queue = eligible;
        shuffle(queue, rng);
      }
      const int64_t label = queue.back();
      queue.pop_back();
      if (!used.insert(label).second) continue;
      std::vector<int64_t> pool = by_label[label];
      shuffle(pool, rng);
      for (int64_t j = 0; j < K; ++j)
        batch.push_back(j < static_cast<int64_t>(pool.size()) ? pool[j]
                                                              : pool[rng.below(pool.size())]);
    }
    batches.push_back(std::move(batch));
  }
  return batches;
}

namespace {
// Runs `transform` on each channel plane of a normalised (3, H, W) image as a float cv::Mat.
template <class F>
void per_plane(float* image, int H, int W, F&& transform) {
  for (int ch = 0; ch < 3; ++ch) {
    cv::Mat plane(H, W, CV_32F, image + int64_t(ch) * H * W);
    cv::Mat out = transform(plane);
    out.copyTo(plane);
  }
}
}  // namespace

void augment(float* image, int H, int W, const AugmentConfig& c, Rng& rng) {
  const int64_t plane = int64_t(H) * W;
  if (c.flip && rng.uniform() < 0.5)
    for (int ch = 0; ch < 3; ++ch)
      for (int y = 0; y < H; ++y)
        std::reverse(image + ch * plane + y * W, image + ch * plane + (y + 1) * W);
  if (c.crop > 0) {
    // Shift by (dy, dx) in [−crop, crop]; uncovered pixels become black (−1 after normalisation).
    const int dy = static_cast<int>(rng.below(2 * c.crop + 1)) - c.crop;
    const int dx = static_cast<int>(rng.below(2 * c.crop + 1)) - c.crop;
    std::vector<float> src(image, image + 3 * plane);
    for (int ch = 0; ch < 3; ++ch)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x) {
          const int sy = y + dy, sx = x + dx;
          image[ch * plane + y * W + x] =
              (sy >= 0 && sy < H && sx >= 0 && sx < W) ? src[ch * plane + sy * W + sx] : -1.0f;
        }
  }
  if (c.color_jitter > 0) {
    const float brightness =
        static_cast<float>(rng.uniform(1 - c.color_jitter, 1 + c.color_jitter));
    const float contrast = static_cast<float>(rng.uniform(1 - c.color_jitter, 1 + c.color_jitter));
    // On pixel values p in [0, 255]: p' = contrast·(brightness·p − mean) + mean, clipped; here in
    // normalised units (p − 127.5)/127.5.
    double mean = 0;
    for (int64_t i = 0; i < 3 * plane; ++i) mean += (image[i] * 127.5 + 127.5) * brightness;
    mean /= 3.0 * plane;
    for (int64_t i = 0; i < 3 * plane; ++i) {
      const double p = (image[i] * 127.5 + 127.5) * brightness;
      const double q = std::clamp(contrast * (p - mean) + mean, 0.0, 255.0);
      image[i] = static_cast<float>((q - 127.5) / 127.5);
    }
  }
  // These three draw random numbers only when enabled and after the ones above, so a config
  // without them sees the same images as before they existed.
  if (c.rotation > 0) {
    const double degrees = c.rotation * rng.uniform(-1.0, 1.0);
    const cv::Mat m =
        cv::getRotationMatrix2D(cv::Point2f((W - 1) / 2.0f, (H - 1) / 2.0f), degrees, 1.0);
    per_plane(image, H, W, [&](const cv::Mat& p) {
      cv::Mat out;
      cv::warpAffine(p, out, m, p.size(), cv::INTER_LINEAR, cv::BORDER_CONSTANT, cv::Scalar(-1.0));
      return out;
    });
  }
  if (c.low_resolution > 0 && rng.uniform() < c.low_resolution) {
    const double scale = c.low_resolution_min + (1.0 - c.low_resolution_min) * rng.uniform();
    const cv::Size small(std::max(1, int(std::lround(W * scale))),
                         std::max(1, int(std::lround(H * scale))));
    per_plane(image, H, W, [&](const cv::Mat& p) {
      cv::Mat shrunk, back;
      cv::resize(p, shrunk, small, 0, 0, cv::INTER_AREA);
      cv::resize(shrunk, back, p.size(), 0, 0, cv::INTER_LINEAR);
      return back;
    });
  }
  if (c.grayscale > 0 && rng.uniform() < c.grayscale) {
    // Channels are R, G, B (backbone contract): Y = 0.299 R + 0.587 G + 0.114 B; an affine map,
    // so it holds on normalised values too.
    for (int64_t i = 0; i < plane; ++i) {
      const float y = 0.299f * image[i] + 0.587f * image[plane + i] + 0.114f * image[2 * plane + i];
      image[i] = image[plane + i] = image[2 * plane + i] = y;
    }
  }
}

DataLoader::DataLoader(const TrainingSet& data, const LoaderConfig& config)
    : data_(data), config_(config) {
  MF_CHECK(config.threads >= 1, "data.loader_threads must be at least 1");
  MF_CHECK(config.ranks >= 1 && config.rank >= 0 && config.rank < config.ranks,
           "internal: loader rank ", config.rank, " of ", config.ranks);
  MF_CHECK(data.size() > 0, "the training set is empty");
  if (config.sampler == "pk") {
    config_.batch_size = config.p * config.k;
    // An identity with fewer than k images repeats some of them within its k slots: legal, but
    // said out loud, since repeated images add no new positive pairs.
    std::map<int64_t, int64_t> per_label;
    for (const int64_t label : data.labels()) ++per_label[label];
    int64_t short_ids = 0, usable = 0;
    for (const auto& [label, n] : per_label) {
      usable += n >= 2;
      short_ids += n >= 2 && n < config.k;
    }
    if (short_ids > 0)
      std::fprintf(stderr,
                   "warning: pk sampler: %lld of the %lld identities with two or more images have "
                   "fewer than k = %lld; their images repeat within a batch\n",
                   (long long)short_ids, (long long)usable, (long long)config.k);
  } else {
    MF_CHECK(config.sampler == "random", "unknown sampler '", config.sampler,
             "' (known: random, pk)");
    MF_CHECK(data.size() >= config.batch_size, "the training set has ", data.size(),
             " images, fewer than one batch of ", config.batch_size);
  }
}

DataLoader::~DataLoader() {
  stop();
}

int64_t DataLoader::batches_per_epoch() const {
  if (config_.sampler == "pk") return data_.size() / (config_.p * config_.k);
  return data_.size() / config_.batch_size;
}

void DataLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  consumed_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  stopping_ = false;
}

void DataLoader::start_epoch(int64_t epoch, int64_t first_batch) {
  stop();
  epoch_ = epoch;
  batches_ =
      config_.sampler == "pk"
          ? pk_batches(data_.labels(), config_.p, config_.k, config_.seed, epoch)
          : random_batches(data_.size(), config_.batch_size, config_.shuffle, config_.seed, epoch);
  ready_.clear();
  errors_.clear();
  next_to_make_ = first_batch;
  next_to_give_ = first_batch;
  for (int t = 0; t < config_.threads; ++t) workers_.emplace_back([this] { work(); });
}

Batch DataLoader::make_batch(int64_t b) {
  const auto& global = batches_[b];
  const int64_t size = static_cast<int64_t>(global.size());
  const std::vector<int64_t> indices(global.begin() + size * config_.rank / config_.ranks,
                                     global.begin() + size * (config_.rank + 1) / config_.ranks);
  const int H = data_.height(), W = data_.width();
  const int64_t image_size = 3 * int64_t(H) * W;
  std::vector<float> buffer(indices.size() * image_size);
  Batch batch;
  for (int64_t index : indices) {
    float* out = buffer.data() + batch.indices.size() * image_size;
    try {
      data_.load(index, out);
    } catch (const Error& e) {
      if (config_.fail_on_bad_image) throw;
      std::lock_guard<std::mutex> lock(mutex_);
      if (bad_.insert(index).second) {
        if (bad_examples_.size() < 5) bad_examples_.push_back(e.what());
        std::fprintf(stderr, "warning: skipping unreadable image: %s\n", e.what());
      }
      continue;
    }
    Rng rng(mix(config_.seed, 3 + uint64_t(epoch_), uint64_t(index)));
    augment(out, H, W, config_.augment, rng);
    batch.indices.push_back(index);
    batch.labels.push_back(data_.label(index));
  }
  const int64_t n = static_cast<int64_t>(batch.indices.size());
  batch.images = Tensor::empty({n, 3, H, W});
  std::memcpy(batch.images.data(), buffer.data(), n * image_size * sizeof(float));
  return batch;
}

void DataLoader::work() {
  while (true) {
    const int64_t b = next_to_make_.fetch_add(1);
    if (b >= static_cast<int64_t>(batches_.size())) return;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      consumed_.wait(lock, [&] { return stopping_ || b < next_to_give_ + config_.prefetch; });
      if (stopping_) return;
    }
    Batch batch;
    std::exception_ptr error;
    try {
      batch = make_batch(b);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error)
        errors_[b] = error;
      else
        ready_[b] = std::move(batch);
    }
    produced_.notify_all();
  }
}

std::optional<Batch> DataLoader::next() {
  if (next_to_give_ >= static_cast<int64_t>(batches_.size())) return std::nullopt;
  std::unique_lock<std::mutex> lock(mutex_);
  const int64_t b = next_to_give_;
  produced_.wait(lock, [&] { return ready_.count(b) || errors_.count(b); });
  if (errors_.count(b)) {
    auto error = errors_[b];
    lock.unlock();
    stop();
    std::rethrow_exception(error);
  }
  Batch batch = std::move(ready_[b]);
  ready_.erase(b);
  ++next_to_give_;
  lock.unlock();
  consumed_.notify_all();
  return batch;
}

int64_t DataLoader::bad_images() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(bad_.size());
}

std::vector<std::string> DataLoader::bad_examples() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return bad_examples_;
}

}  // namespace mf
