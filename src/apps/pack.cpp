// `marginface pack --in DIR [--in DIR ...] --out data.h5 [--size 112x112]`
#include <cstdio>

#include "apps/commands.h"
#include "data/pack.h"
#include "util/args.h"
#include "util/error.h"

namespace mf::apps {

int run_pack(const std::vector<std::string>& argv) {
  Args args("pack",
            "Packs image folders (root/<identity>/<image>) into one HDF5 file for training:\n"
            "/images uint8 (N, H, W, 3) RGB, /labels int64, /identities. Unreadable or wrongly\n"
            "sized images are skipped with a warning and counted.");
  args.repeated("in", "an image folder (identities are numbered across folders in order)");
  args.option("out", "output .h5 file", "", true);
  args.option("size", "image size HxW", "112x112");
  if (!args.parse(argv)) return 0;
  const std::string size = args.get("size");
  int h = 0, w = 0;
  MF_CHECK(std::sscanf(size.c_str(), "%dx%d", &h, &w) == 2 && h > 0 && w > 0,
           "--size expects HxW, e.g. 112x112 (got '", size, "')");
  const PackSummary s = pack_folders(args.all("in"), args.get("out"), h, w);
  std::printf("packed %lld images of %lld identities into %s", (long long)s.images,
              (long long)s.identities, args.get("out").c_str());
  if (s.skipped) std::printf(" (%lld unreadable or wrongly sized images skipped)", (long long)s.skipped);
  std::printf("\n");
  return 0;
}

}  // namespace mf::apps
