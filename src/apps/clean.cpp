// `marginface clean --checkpoint CK --data SRC [--data SRC2 …] [--max-angle 75] --out kept.txt`:
// Sub-center ArcFace's noise cleaning (eval/subcenter_clean.h) on the training data the
// checkpoint was trained on, written as a list source ("path label" lines) for data.train.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "apps/commands.h"
#include "data/dataset.h"
#include "eval/embed.h"
#include "eval/subcenter_clean.h"
#include "h5/file.h"
#include "io/checkpoint.h"
#include "tensor/parallel.h"
#include "util/args.h"
#include "util/error.h"
#include "util/file.h"

namespace mf::apps {

int run_clean(const std::vector<std::string>& argv) {
  Args args("clean",
            "Sub-center ArcFace's noise cleaning (Deng et al., ECCV 2020, §3.2): embeds every\n"
            "training image with a subcenter_arcface checkpoint, finds each class's dominant\n"
            "sub-centre (the one most of its images are nearest to) and drops the images farther\n"
            "than --max-angle from it. Writes the kept images as a list ('path label' lines)\n"
            "that data.train reads; the paper then retrains on it with one centre per class.");
  args.option("checkpoint", "a checkpoint trained with head.type subcenter_arcface", "", true);
  args.repeated("data", "the training sources, as in data.train (folders or lists), in order");
  args.option("root", "root of list sources, as data.root", "");
  args.option("max-angle", "drop images farther than this from the dominant sub-centre (degrees)",
              "75");
  args.option("out", "the kept images as a list file", "", true);
  args.option("batch", "images per forward pass", "64");
  args.option("threads", "threads (0 = OMP_NUM_THREADS or all cores)", "0");
  if (!args.parse(argv)) return 0;
  args.check_outputs_are_not_inputs({"out"}, {"checkpoint", "data"});
  MF_CHECK(!args.all("data").empty(), "give the training data with --data");
  set_num_threads(args.get_int("threads", 0, 1024));
  const std::string checkpoint = args.get("checkpoint");
  const double max_angle = args.get_double("max-angle");

  const CheckpointMeta meta = read_checkpoint_meta(checkpoint);
  MF_CHECK(meta.head == "subcenter_arcface", checkpoint, " was trained with head '", meta.head,
           "'; clean needs a subcenter_arcface checkpoint (its sub-centres)");
  Tensor subcentres;  // (K·G, D)
  std::vector<std::string> identities;
  {
    const h5::File f(checkpoint, h5::File::Mode::kRead);
    subcentres = f.read_tensor("/head/weight");
    if (f.exists("/identities")) identities = f.read_strings("/identities");
  }
  auto backbone = load_backbone(checkpoint);
  const TrainingSet data =
      TrainingSet::open(args.all("data"), args.get("root"), int(backbone->input_height()),
                        int(backbone->input_width()));
  const int64_t K = data.num_classes(), N = data.size();
  MF_CHECK(subcentres.dim(0) % K == 0, checkpoint, ": ", subcentres.dim(0),
           " sub-centre rows do not split over the ", K, " identities of --data");
  MF_CHECK(identities.empty() || identities == data.identities(),
           "--data does not hold the identities ", checkpoint,
           " was trained on (in the same order): give the same sources as its data.train");
  for (int64_t i = 0; i < N; ++i) {
    const std::string path = data.name_of(i);
    MF_CHECK(std::filesystem::exists(path), "clean writes image paths, but sample ", i, " is '",
             path, "' (packed or RecordIO sources have no files to list)");
    MF_CHECK(path.find_first_of(" \t") == std::string::npos, "'", path,
             "' contains a space, which a list file ('path label' lines) cannot hold");
  }
  const int64_t groups = subcentres.dim(0) / K;
  std::printf("embedding %lld images of %lld identities with %s (%lld sub-centres per class)\n",
              (long long)N, (long long)K, checkpoint.c_str(), (long long)groups);
  std::fflush(stdout);

  eval::EmbedOptions options;
  options.flip = "off";  // the features the head saw in training
  options.batch_size = args.get_int("batch", 1, 4096);
  const int64_t D = backbone->embedding_size(), chunk = 1024;
  Tensor embeddings = Tensor::empty({N, D});
  const auto start = std::chrono::steady_clock::now();
  for (int64_t first = 0; first < N; first += chunk) {
    const int64_t last = std::min(N, first + chunk);
    const eval::Embeddings e = eval::embed_images(
        *backbone, last - first,
        [&](int64_t i, int, int, float* out) { data.load(first + i, out); }, options);
    MF_CHECK(e.num_failed() == 0, "clean: ", e.errors.at(0));
    std::copy_n(e.rows.data(), (last - first) * D, embeddings.data() + first * D);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("  %lld/%lld images, %.1f images/s, ETA %.0f s\n", (long long)last, (long long)N,
                double(last) / s, double(N - last) * s / double(last));
    std::fflush(stdout);
  }

  const eval::SubcenterCleaning c =
      eval::clean_by_subcentres(embeddings, data.labels(), subcentres, groups, max_angle);
  // Labels renumbered over the classes that keep images (a list source needs 0 … K' − 1).
  std::vector<int64_t> new_label(K, -1);
  int64_t classes = 0;
  for (int64_t k = 0; k < K; ++k)
    if (c.kept_per_class[k] > 0) new_label[k] = classes++;
  std::ostringstream list;
  for (int64_t i = 0; i < N; ++i)
    if (c.keep[i])
      list << std::filesystem::absolute(data.name_of(i)).string() << " " << new_label[data.label(i)]
           << "\n";
  write_file_atomically(args.get("out"), list.str());
  // A model far from converged has its images far from every sub-centre, and cleaning with it
  // drops clean images too (the ablation's 160-step model drops 25 %, and whole identities).
  if (classes < K || 5 * c.dropped > N)
    std::fprintf(stderr,
                 "warning: %lld identities lost every image and %.1f %% of the images were "
                 "dropped; is %s trained to convergence? The paper cleans with a fully trained "
                 "model.\n",
                 (long long)(K - classes), 100.0 * double(c.dropped) / double(N),
                 checkpoint.c_str());
  std::printf(
      "kept %lld of %lld images (%.2f %%), dropped %lld farther than %g degrees from "
      "their class's dominant sub-centre; %lld of %lld identities keep images\nwrote %s\n",
      (long long)c.kept, (long long)N, 100.0 * double(c.kept) / double(N), (long long)c.dropped,
      max_angle, (long long)classes, (long long)K, args.get("out").c_str());
  return 0;
}

}  // namespace mf::apps
