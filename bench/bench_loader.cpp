// Loader throughput: images decoded + augmented per second through DataLoader (the training
// loader: its threads, batches of 64, flip + crop augmentation) from an image folder and from the
// same images packed as an insightface RecordIO pack. Rounds alternate folder / pack; the table
// gives medians and the ratio. Both read from the page cache after the first round (the pack's
// advantage on a cold disk — one file, sequential offsets — is not measured here).
//
//   build/bin/bench_loader [--folder DIR] [--threads 2] [--rounds 5] [--batch 64]
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/loader.h"
#include "data/pack.h"

namespace fs = std::filesystem;

namespace {

std::string cpu_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

double images_per_second(const mf::TrainingSet& set, int threads, int64_t batch) {
  mf::LoaderConfig config;
  config.batch_size = batch;
  config.threads = threads;
  config.augment.flip = true;
  config.augment.crop = 4;
  mf::DataLoader loader(set, config);
  const auto t0 = std::chrono::steady_clock::now();
  loader.start_epoch(0);
  int64_t images = 0;
  while (auto b = loader.next()) images += b->images.dim(0);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(images) / s;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

int main(int argc, char** argv) {
  std::string folder = "../shared/data/aligned/celeba";
  int threads = 2, rounds = 5;
  int64_t batch = 64;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i];
    if (a == "--folder")
      folder = argv[i + 1];
    else if (a == "--threads")
      threads = std::atoi(argv[i + 1]);
    else if (a == "--rounds")
      rounds = std::atoi(argv[i + 1]);
    else if (a == "--batch")
      batch = std::atoll(argv[i + 1]);
    else {
      std::fprintf(stderr,
                   "usage: bench_loader [--folder DIR] [--threads N] [--rounds N] [--batch N]\n");
      return 2;
    }
  }
  try {
    const fs::path tmp =
        fs::temp_directory_path() / ("mf_bench_loader_" + std::to_string(::getpid()));
    fs::create_directories(tmp);
    const mf::PackSummary s = mf::pack_folders_rec({folder}, (tmp / "train").string(), 112, 112);
    const mf::TrainingSet from_folder = mf::TrainingSet::open({folder}, "", 112, 112);
    const mf::TrainingSet from_pack =
        mf::TrainingSet::open({(tmp / "train.rec").string()}, "", 112, 112);
    std::printf(
        "%lld images of %lld identities from %s; %d loader threads, batch %lld, flip + crop 4\n",
        (long long)s.images, (long long)s.identities, folder.c_str(), threads, (long long)batch);
    std::vector<double> a, b;
    for (int r = 0; r < rounds; ++r) {
      a.push_back(images_per_second(from_folder, threads, batch));
      b.push_back(images_per_second(from_pack, threads, batch));
      std::printf("round %d: folder %.0f img/s, pack %.0f img/s\n", r + 1, a.back(), b.back());
    }
    std::printf("\nCPU: %s\n\n| source | images/s (median of %d) |\n|---|---:|\n",
                cpu_name().c_str(), rounds);
    std::printf("| folder (%s) | %.0f |\n| RecordIO pack (.rec) | %.0f |\n", folder.c_str(),
                median(a), median(b));
    std::printf("| ratio pack / folder | %.2f |\n", median(b) / median(a));
    fs::remove_all(tmp);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_loader: %s\n", e.what());
    return 1;
  }
  return 0;
}
