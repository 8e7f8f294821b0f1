// The face pipeline around embeddings: embed image files (optionally aligning raw photos first),
// compare two faces (1:1) and rank a gallery for a query (1:N) by cosine similarity.
#pragma once

#include <string>
#include <vector>

#include "data/align.h"
#include "eval/embed.h"

namespace mf::eval {

// a·b / (‖a‖ ‖b‖) in double; 0 when either vector is zero.
double cosine_similarity(const float* a, const float* b, int64_t dim);

struct Match {
  int64_t index = 0;  // gallery row
  double score = 0;   // cosine similarity
};

// The k rows of `gallery` (N, D) most similar to `query` (D values), best first; equal scores keep
// the lower row first. k larger than N returns all N.
std::vector<Match> top_matches(const Tensor& gallery, const float* query, int64_t k);

// A gallery image's identity: the name of its parent folder ("" when the path has none).
std::string identity_of(const std::string& path);

// Image files (data/image.h is_image_file) under `dir`, recursively, sorted by path.
std::vector<std::string> list_image_files(const std::string& dir);

struct Gallery {
  Tensor embeddings;               // (N, D)
  std::vector<std::string> paths;  // N, as stored
  std::string flip;                // /meta flip when the file records it, else ""
};

// An embeddings file as `marginface embed` writes it: /embeddings (N, D) float32, /paths (N
// strings), optionally /meta attribute flip. Errors name the file and what is wrong.
Gallery read_embeddings_file(const std::string& path);

// Embeddings of image files. Without an aligner the files must be aligned crops (as for
// embed_images). With one, each file is a raw photo: decoded, its face detected and aligned to the
// backbone's input size (the aligner's crop size must match it), then embedded. A file that cannot
// be read or has no face is marked failed with a message naming it.
Embeddings embed_files(Backbone& backbone, const std::vector<std::string>& paths,
                       const EmbedOptions& options, FaceAligner* aligner = nullptr);

// Closed-set identification on a folder of identities (DIR/<identity>/<image>): the first image of
// each identity (by file name) is its gallery entry, the others are probes; rank-k accuracy is the
// fraction of probes whose identity's gallery entry is among the k most similar. Identities with a
// single image stay in the gallery as distractors.
struct IdentificationResult {
  int64_t identities = 0, gallery = 0, probes = 0, failed = 0;
  double rank1 = 0, rank5 = 0;
};
// Unreadable images are an error listing the first few, unless `skip_unreadable` (they are then
// left out and counted in IdentificationResult::failed).
IdentificationResult identify(Backbone& backbone, const std::string& dir,
                              const EmbedOptions& options, bool skip_unreadable = false);

}  // namespace mf::eval
