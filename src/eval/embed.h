// Embeddings of face images through a backbone, and verification of a pair list with them.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "eval/pairs.h"
#include "eval/verification.h"
#include "layers/backbones/backbone.h"

namespace mf::eval {

struct EmbedOptions {
  int batch_size = 64;
  // Flip test-time augmentation (insightface's convention is "sum"):
  //   off    f(x)
  //   sum    f(x) + f(mirror(x)), then L2-normalised      (D values)
  //   concat [f(x)/‖f(x)‖, f(mirror x)/‖f(mirror x)‖] / √2  (2D values)
  std::string flip = "sum";
  bool crop_center = false;  // 112×112 faces into a 112×96 backbone (SphereFace-20)
};

struct Embeddings {
  Tensor rows;  // (N, D) or (N, 2D), L2-normalised; zero rows for failed images
  // ‖f(x)‖ per image before normalisation, of the unflipped image (MagFace's quality); 0 for
  // failed images.
  std::vector<float> norms;
  std::vector<bool> failed;         // per image: missing or unreadable
  std::vector<std::string> errors;  // the messages of the failed ones, in order
  int64_t num_failed() const;
};

// Runs the backbone in eval mode without recording a tape; restores its train/eval mode after.
Embeddings embed_images(Backbone& backbone, const std::vector<std::string>& paths,
                        const EmbedOptions& options);

// Reads image i into 3·H·W floats, throwing mf::Error (naming it) when it cannot.
using ImageReader = std::function<void(int64_t i, int H, int W, float* out)>;
// The same for `count` images produced by `read` (in-memory packs).
Embeddings embed_images(Backbone& backbone, int64_t count, const ImageReader& read,
                        const EmbedOptions& options);

// The same for images already in memory: (N, 3, H, W) at the backbone's input size, normalised as
// load_face does (e.g. aligned crops from data/align.h through bgr_to_face). Returns (N, D) or
// (N, 2D) L2-normalised rows.
Tensor embed_batch(Backbone& backbone, const Tensor& batch, const EmbedOptions& options);

struct PairEvalOptions {
  EmbedOptions embed;
  bool skip_missing = false;  // otherwise a missing image is an error listing the first few
  VerifyOptions verify;
};

struct PairEvaluation {
  VerificationResult result;
  int64_t missing = 0;
  // The evaluated pairs (missing ones dropped): cosine scores, labels, folds, and each pair's
  // quality, the lower of its two images' norms (Embeddings::norms).
  std::vector<double> scores, pair_quality;
  std::vector<uint8_t> same;
  std::vector<int> folds;
};

// Embeds every image of `list` once, scores each pair by cosine similarity and cross-validates.
// With a threshold list (LFW View 1's pairsDevTrain), its best threshold is applied instead.
PairEvaluation evaluate_pairs(Backbone& backbone, const PairList& list,
                              const PairEvalOptions& options,
                              const PairList* threshold_list = nullptr);

}  // namespace mf::eval
