#include "eval/embed.h"

#include <cmath>
#include <cstring>
#include <sstream>

#include "autograd/ops.h"
#include "data/image.h"
#include "util/error.h"

namespace mf::eval {

int64_t Embeddings::num_failed() const {
  int64_t n = 0;
  for (bool f : failed) n += f;
  return n;
}

namespace {
double l2_norm(const float* row, int64_t D) {
  double sq = 0;
  for (int64_t d = 0; d < D; ++d) sq += double(row[d]) * row[d];
  return std::sqrt(sq);
}

void normalize_row(float* row, int64_t D) {
  const double inv = 1.0 / std::max(l2_norm(row, D), 1e-12);
  for (int64_t d = 0; d < D; ++d) row[d] = static_cast<float>(row[d] * inv);
}

void check_options(const EmbedOptions& options) {
  MF_CHECK(options.flip == "off" || options.flip == "sum" || options.flip == "concat",
           "flip must be off, sum or concat (got '", options.flip, "')");
  MF_CHECK(options.batch_size > 0, "embedding batch size must be positive");
}

// Embeds `batch` (n images) into rows ok[0..n) of `out` (out_dim columns); the backbone is in eval
// mode and no tape is recorded.
// norms (nullable) receives ‖f(x)‖ of each row before normalisation.
void embed_into(Backbone& backbone, const Tensor& batch, const std::string& flip,
                const std::vector<int64_t>& ok, Tensor& out, float* norms) {
  const int64_t n = batch.dim(0), D = backbone.embedding_size(), out_dim = out.dim(1);
  Tensor f = backbone.forward(Var(batch)).value();  // (n, D)
  Tensor g;
  if (flip != "off") g = backbone.forward(Var(horizontal_flip(batch))).value();
  for (int64_t r = 0; r < n; ++r) {
    float* row = out.data() + ok[r] * out_dim;
    const float* fr = f.data() + r * D;
    if (norms) norms[ok[r]] = static_cast<float>(l2_norm(fr, D));
    if (flip == "off") {
      std::memcpy(row, fr, D * sizeof(float));
    } else if (flip == "sum") {
      for (int64_t d = 0; d < D; ++d) row[d] = fr[d] + g.data()[r * D + d];
    } else {
      std::memcpy(row, fr, D * sizeof(float));
      std::memcpy(row + D, g.data() + r * D, D * sizeof(float));
      normalize_row(row, D);
      normalize_row(row + D, D);
    }
    normalize_row(row, out_dim);
  }
}
}  // namespace

Embeddings embed_images(Backbone& backbone, const std::vector<std::string>& paths,
                        const EmbedOptions& options) {
  const bool crop_center = options.crop_center;
  return embed_images(
      backbone, static_cast<int64_t>(paths.size()),
      [&](int64_t i, int H, int W, float* out) {
        load_face_into(paths[i], H, W, out, {.crop_center = crop_center});
      },
      options);
}

Embeddings embed_images(Backbone& backbone, int64_t count, const ImageReader& read,
                        const EmbedOptions& options) {
  check_options(options);
  const bool was_training = backbone.is_training();
  backbone.eval();
  NoGradGuard no_grad;
  const int H = static_cast<int>(backbone.input_height()),
            W = static_cast<int>(backbone.input_width());
  const int64_t D = backbone.embedding_size(), out_dim = options.flip == "concat" ? 2 * D : D;
  const int64_t N = count, image_size = 3 * int64_t(H) * W;
  Embeddings out;
  out.rows = Tensor::zeros({N, out_dim});
  out.failed.assign(N, false);
  out.norms.assign(N, 0.0f);
  for (int64_t start = 0; start < N; start += options.batch_size) {
    std::vector<int64_t> ok;
    std::vector<float> pixels;
    pixels.reserve(options.batch_size * image_size);
    for (int64_t i = start; i < std::min(N, start + options.batch_size); ++i) {
      std::vector<float> image(image_size);
      try {
        read(i, H, W, image.data());
      } catch (const Error& e) {
        out.failed[i] = true;
        out.errors.push_back(e.what());
        continue;
      }
      ok.push_back(i);
      pixels.insert(pixels.end(), image.begin(), image.end());
    }
    if (ok.empty()) continue;
    const int64_t n = static_cast<int64_t>(ok.size());
    Tensor batch = Tensor::empty({n, 3, H, W});
    std::memcpy(batch.data(), pixels.data(), pixels.size() * sizeof(float));
    embed_into(backbone, batch, options.flip, ok, out.rows, out.norms.data());
  }
  backbone.train(was_training);
  return out;
}

Tensor embed_batch(Backbone& backbone, const Tensor& batch, const EmbedOptions& options) {
  check_options(options);
  const int64_t H = backbone.input_height(), W = backbone.input_width();
  MF_CHECK(batch.defined() && batch.rank() == 4 && batch.dim(1) == 3 && batch.dim(2) == H &&
               batch.dim(3) == W,
           "embed_batch: expected images (N, 3, ", H, ", ", W, "), got ",
           batch.defined() ? batch.shape().str() : std::string("an undefined tensor"));
  const int64_t N = batch.dim(0), D = backbone.embedding_size();
  Tensor out = Tensor::zeros({N, options.flip == "concat" ? 2 * D : D});
  const bool was_training = backbone.is_training();
  backbone.eval();
  {
    NoGradGuard no_grad;
    const int64_t image_size = 3 * H * W;
    for (int64_t start = 0; start < N; start += options.batch_size) {
      const int64_t n = std::min<int64_t>(options.batch_size, N - start);
      Tensor chunk = Tensor::empty({n, 3, H, W});
      std::memcpy(chunk.data(), batch.data() + start * image_size, n * image_size * sizeof(float));
      std::vector<int64_t> rows(n);
      for (int64_t r = 0; r < n; ++r) rows[r] = start + r;
      embed_into(backbone, chunk, options.flip, rows, out, nullptr);
    }
  }
  backbone.train(was_training);
  return out;
}

namespace {
std::vector<double> cosine_scores(const PairList& list, const Tensor& rows) {
  const int64_t D = rows.dim(1);
  std::vector<double> scores;
  scores.reserve(list.pairs.size());
  for (const Pair& p : list.pairs) {
    const float* a = rows.data() + p.a * D;
    const float* b = rows.data() + p.b * D;
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += double(a[d]) * b[d];
    scores.push_back(dot);
  }
  return scores;
}

// Embeds a list's images; missing ones are an error (listing the first few) unless skipped, in
// which case their pairs are dropped from the returned list. The returned pairs keep their image
// indices: they index the rows of every image of `list` (a failed image's row is zero and unused).
struct EmbeddedList {
  PairList kept;
  Tensor rows;
  std::vector<float> norms;
};
EmbeddedList embed_list(Backbone& backbone, const PairList& list, const PairEvalOptions& options,
                        int64_t* missing) {
  Embeddings e = list.read_image ? embed_images(backbone, static_cast<int64_t>(list.images.size()),
                                                list.read_image, options.embed)
                                 : embed_images(backbone, list.images, options.embed);
  *missing = e.num_failed();
  if (*missing == 0) return {list, e.rows, e.norms};
  if (!options.skip_missing) {
    std::ostringstream msg;
    msg << list.file << ": " << *missing << " of " << list.images.size()
        << " images are missing or unreadable (pass --skip-missing to drop their pairs); first:";
    for (size_t i = 0; i < std::min<size_t>(3, e.errors.size()); ++i) msg << "\n  " << e.errors[i];
    MF_FAIL(msg.str());
  }
  PairList kept = list;
  kept.pairs.clear();
  for (const Pair& p : list.pairs)
    if (!e.failed[p.a] && !e.failed[p.b]) kept.pairs.push_back(p);
  return {kept, e.rows, e.norms};
}
}  // namespace

PairEvaluation evaluate_pairs(Backbone& backbone, const PairList& list,
                              const PairEvalOptions& options, const PairList* threshold_list) {
  PairEvaluation out;
  const EmbeddedList e = embed_list(backbone, list, options, &out.missing);
  MF_CHECK(!e.kept.pairs.empty(), list.file, ": no pairs left to evaluate");
  out.scores = cosine_scores(e.kept, e.rows);
  out.same = e.kept.labels();
  out.folds = e.kept.folds();
  for (const Pair& p : e.kept.pairs)
    out.pair_quality.push_back(std::min(e.norms[p.a], e.norms[p.b]));
  if (threshold_list) {
    int64_t missing_t = 0;
    const EmbeddedList t = embed_list(backbone, *threshold_list, options, &missing_t);
    out.missing += missing_t;
    const auto scores_t = cosine_scores(t.kept, t.rows);
    const auto same_t = t.kept.labels();
    out.result =
        verify_with_threshold_pairs(out.scores, out.same, scores_t, same_t, options.verify);
  } else {
    out.result = verify(out.scores, out.same, out.folds, options.verify);
  }
  return out;
}

}  // namespace mf::eval
