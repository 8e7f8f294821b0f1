// `marginface embed --checkpoint ck.h5 --images DIR_OR_LIST [--root DIR] --out emb.h5 ...`
//
// Output (HDF5, written atomically):
//   /embeddings   (N, D) float32, L2-normalised rows ((N, 2D) with --flip concat)
//   /norms        (N) float32: ‖f(x)‖ before normalisation (unflipped), MagFace's face quality
//   /paths        N variable-length UTF-8 strings: relative to DIR for a folder; for a list file,
//                 each line as written (relative to --root, or absolute)
//   /skipped      the paths left out by --skip-missing (only when there are any)
//   /meta         attributes checkpoint, flip, backbone, embedding_size, skipped (a count)
#include "eval/embed.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "apps/commands.h"
#include "apps/model_source.h"
#include "data/image.h"
#include "h5/file.h"
#include "io/checkpoint.h"
#include "tensor/kernels/gemm_bf16.h"
#include "tensor/parallel.h"
#include "util/args.h"
#include "util/error.h"

namespace mf::apps {

namespace {

namespace fs = std::filesystem;

struct ImageList {
  std::vector<std::string> names;  // as stored in /paths
  std::vector<std::string> files;  // as opened
};

// Every image under `dir`, recursively, sorted by its path relative to `dir`.
ImageList walk_folder(const fs::path& dir) {
  std::vector<std::string> rel = find_images(dir.string());
  MF_CHECK(!rel.empty(), "no images (", kImageExtensions, ") under '", dir.string(), "'");
  ImageList out;
  for (auto& r : rel) {
    out.files.push_back((dir / r).string());
    out.names.push_back(std::move(r));
  }
  return out;
}

// One path per line (surrounding spaces trimmed; empty lines and lines starting with '#' skipped),
// relative to `root` unless absolute. Kept in file order.
ImageList read_list(const std::string& list, const std::string& root) {
  std::ifstream in(list);
  MF_CHECK(in.good(), "cannot open image list '", list, "'");
  ImageList out;
  std::string line;
  while (std::getline(in, line)) {
    const size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    const std::string path = line.substr(first, line.find_last_not_of(" \t\r") - first + 1);
    const fs::path p(path);
    out.files.push_back(p.is_absolute() || root.empty() ? path : (fs::path(root) / p).string());
    out.names.push_back(path);
  }
  MF_CHECK(!out.files.empty(), list, ": no image paths in the list");
  return out;
}

}  // namespace

int run_embed(const std::vector<std::string>& argv) {
  Args args(
      "embed",
      "Embeds face images with a checkpoint's backbone into one HDF5 file: /embeddings (N x D,\n"
      "L2-normalised), /paths, /meta (checkpoint, flip). Images must be aligned (112x112).");
  add_model_options(args);
  args.option("images",
              "a folder (walked recursively for .jpg .jpeg .png .bmp .pgm, sorted) or a text file "
              "with one image path per line",
              "", true);
  args.option("root", "folder that relative paths in a list file start from", "");
  args.option("out", "output file (.h5)", "", true);
  args.option("flip", "flip test-time augmentation: off, sum (f(x) + f(mirror x)), concat", "sum");
  args.option("batch", "images per forward pass", "64");
  args.option("threads", "threads (0 = OMP_NUM_THREADS or all cores)", "0");
  add_conv_kernel_options(args,
                          "convolutions: fp32 (exact) or bf16 (the AMX or AVX512-BF16 fast path; "
                          "its LFW effect is in docs/performance.md)");
  args.flag("skip-missing", "leave missing or unreadable images out (counted) instead of failing");
  if (!args.parse(argv)) return 0;
  args.check_outputs_are_not_inputs({"out"}, {"checkpoint", "model", "images"});
  set_num_threads(args.get_int("threads", 0, 1024));  // 0: all cores
  apply_conv_kernel_options(args);

  const std::string images = args.get("images"), root = args.get("root");
  MF_CHECK(fs::exists(images), "--images '", images, "' does not exist");
  ImageList list;
  if (fs::is_directory(images)) {
    MF_CHECK(root.empty(), "--root applies to a list file; --images '", images, "' is a folder");
    list = walk_folder(images);
  } else {
    list = read_list(images, root);
  }

  EmbeddingModel model = load_embedding_model(args);
  const std::string& checkpoint = model.path;
  const CheckpointMeta& meta = model.meta;
  Backbone* backbone = model.backbone.get();
  eval::EmbedOptions options;
  options.flip = model.flip_to_run(args.get("flip"));
  options.batch_size = args.get_int("batch");
  options.crop_center = backbone->input_width() != backbone->input_height();
  const int64_t N = static_cast<int64_t>(list.files.size());
  std::printf("embedding %lld images with %s (%s, D = %lld), flip %s\n", (long long)N,
              checkpoint.c_str(), meta.backbone.c_str(), (long long)backbone->embedding_size(),
              args.get("flip").c_str());
  std::fflush(stdout);

  // In chunks, to report progress on large folders.
  const auto start = std::chrono::steady_clock::now();
  const int64_t chunk = std::max<int64_t>(1024, options.batch_size);
  std::vector<eval::Embeddings> parts;
  for (int64_t first = 0; first < N; first += chunk) {
    const int64_t last = std::min(N, first + chunk);
    parts.push_back(eval::embed_images(
        *backbone, std::vector<std::string>(list.files.begin() + first, list.files.begin() + last),
        options));
    if (N > chunk) {
      const double s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::printf("  %lld/%lld images, %.1f images/s\n", (long long)last, (long long)N, last / s);
      std::fflush(stdout);
    }
  }

  std::vector<std::string> errors, kept_names, skipped;
  std::vector<int64_t> kept_rows;
  for (size_t p = 0, i = 0; p < parts.size(); ++p) {
    for (const auto& e : parts[p].errors) errors.push_back(e);
    for (size_t r = 0; r < parts[p].failed.size(); ++r, ++i) {
      if (parts[p].failed[r]) {
        skipped.push_back(list.names[i]);
      } else {
        kept_rows.push_back(static_cast<int64_t>(i));
        kept_names.push_back(list.names[i]);
      }
    }
  }
  if (!skipped.empty() && !args.flag_set("skip-missing")) {
    std::ostringstream msg;
    msg << skipped.size() << " of " << N
        << " images are missing or unreadable (pass --skip-missing to leave them out); first:";
    for (size_t i = 0; i < std::min<size_t>(5, errors.size()); ++i) msg << "\n  " << errors[i];
    MF_FAIL(msg.str());
  }
  MF_CHECK(!kept_rows.empty(), "none of the ", N,
           " images could be read; first error: ", errors[0]);

  const int64_t dim = parts[0].rows.dim(1), kept = static_cast<int64_t>(kept_rows.size());
  std::vector<float> rows(kept * dim), norms(kept);
  for (int64_t k = 0; k < kept; ++k) {
    const int64_t i = kept_rows[k];
    const Tensor& part = parts[i / chunk].rows;
    std::copy_n(part.data() + (i % chunk) * dim, dim, rows.data() + k * dim);
    norms[k] = parts[i / chunk].norms[i % chunk];
  }
  const std::string out = args.get("out");
  const fs::path parent = fs::path(out).parent_path();
  if (!parent.empty()) fs::create_directories(parent);
  h5::write_atomically(out, [&](h5::File& f) {
    f.write_floats("/embeddings", rows.data(), {kept, dim});
    f.write_floats("/norms", norms.data(), {kept});
    f.write_strings("/paths", kept_names);
    if (!skipped.empty()) f.write_strings("/skipped", skipped);
    f.write_attr("/meta", "checkpoint", checkpoint);
    f.write_attr("/meta", "flip", args.get("flip"));
    f.write_attr("/meta", "backbone", meta.backbone);
    f.write_attr("/meta", "embedding_size", backbone->embedding_size());
    f.write_attr("/meta", "skipped", static_cast<int64_t>(skipped.size()));
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("wrote %s: %lld x %lld embeddings in %.1f s", out.c_str(), (long long)kept,
              (long long)dim, s);
  if (!skipped.empty()) {
    std::printf("; %zu missing or unreadable images left out, first:", skipped.size());
    for (size_t i = 0; i < std::min<size_t>(3, errors.size()); ++i)
      std::printf("\n  %s", errors[i].c_str());
  }
  std::printf("\n");
  return 0;
}

}  // namespace mf::apps
