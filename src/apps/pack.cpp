// `marginface pack`: image folders into one training file (HDF5 or insightface RecordIO), a pair
// list into an insightface validation pack (.bin), or a fresh .idx for a RecordIO pack.
#include "data/pack.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>

#include "apps/commands.h"
#include "data/bin_pack.h"
#include "data/image.h"
#include "data/recordio.h"
#include "eval/pairs.h"
#include "util/args.h"
#include "util/error.h"

namespace mf::apps {

namespace {

// LFW's pairs formats start with a header of one or two integers; generic lists with a path.
bool looks_like_lfw_pairs(const std::string& file) {
  std::ifstream in(file);
  MF_CHECK(in.good(), "cannot open pair list ", file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#' || line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    return line.find_first_not_of("0123456789 \t\r") == std::string::npos;
  }
  return false;
}

int pack_bin(const Args& args) {
  MF_CHECK(args.has("pairs"), "--format bin needs --pairs (an LFW pairs file or a generic list)");
  const std::string pairs = args.get("pairs"), root = args.get("root"), out = args.get("out");
  const eval::PairList list = looks_like_lfw_pairs(pairs) ? eval::read_lfw_pairs(pairs, root)
                                                          : eval::read_generic_pairs(pairs, root);
  std::vector<std::string> encoded(list.images.size());
  for (size_t i = 0; i < list.images.size(); ++i) {
    encoded[i] = read_image_bytes(list.images[i]);
    // Decoded once to refuse a truncated or undecodable file before it enters the pack.
    decode_image(reinterpret_cast<const uint8_t*>(encoded[i].data()), encoded[i].size(),
                 list.images[i]);
  }
  std::vector<std::string> images;
  std::vector<uint8_t> same;
  images.reserve(2 * list.pairs.size());
  for (const eval::Pair& p : list.pairs) {
    images.push_back(encoded[p.a]);
    images.push_back(encoded[p.b]);
    same.push_back(p.same);
  }
  write_bin_pack(out, images, same);
  std::printf("packed %zu pairs (%zu images, %zu distinct) of %s into %s\n", same.size(),
              images.size(), list.images.size(), pairs.c_str(), out.c_str());
  if (list.num_folds != 10 || list.protocol == "pairs")
    std::printf(
        "note: a .bin carries no folds; `eval --bin` splits its pairs into 10 consecutive "
        "blocks\n");
  return 0;
}

}  // namespace

int run_pack(const std::vector<std::string>& argv) {
  Args args(
      "pack",
      "Packs data into one file:\n"
      "  --format h5   image folders (root/<identity>/<image>) → HDF5: /images uint8 (N, H, W,\n"
      "                3) RGB, /labels, /identities (decoded once, no JPEG decoding in training)\n"
      "  --format rec  image folders → insightface RecordIO: OUT.rec, OUT.idx, OUT.names and\n"
      "                `property` (meta record, image records with the files' own bytes,\n"
      "                identity records), readable by insightface's tools and by data.train\n"
      "  --format bin  a pair list (LFW pairs.txt/pairsDevTest.txt or `a b label`) with --root\n"
      "                → an insightface validation pack for `eval --bin` (pickle protocol 4)\n"
      "  --reindex X.rec  rebuild X.idx by scanning X.rec\n"
      "Unreadable or wrongly sized images are skipped with a warning (h5, rec) or are an error\n"
      "(bin: a pair cannot lose an image).");
  args.option("format", "h5, rec or bin", "h5");
  args.repeated("in", "an image folder (identities are numbered across folders in order)");
  args.option("out", "output: .h5 file, RecordIO prefix (OUT.rec …) or .bin file");
  args.option("size", "image size HxW", "112x112");
  args.option("pairs", "--format bin: the pair list");
  args.option("root", "--format bin: image root of the pair list", "");
  args.option("reindex", "scan this .rec and write its .idx beside it");
  if (!args.parse(argv)) return 0;
  if (args.has("reindex")) {
    const std::string rec = args.get("reindex");
    const std::string idx = recordio::index_path_of(rec);
    const int64_t n = recordio::reindex(rec, idx);
    std::printf("indexed %lld records of %s into %s\n", (long long)n, rec.c_str(), idx.c_str());
    return 0;
  }
  MF_CHECK(args.has("out"), "--out is required");
  const std::string format = args.get("format");
  MF_CHECK(format == "h5" || format == "rec" || format == "bin",
           "--format must be h5, rec or bin (got '", format, "')");
  if (format == "bin") return pack_bin(args);
  const std::string size = args.get("size");
  int h = 0, w = 0;
  MF_CHECK(std::sscanf(size.c_str(), "%dx%d", &h, &w) == 2 && h > 0 && w > 0,
           "--size expects HxW, e.g. 112x112 (got '", size, "')");
  std::string out = args.get("out");
  if (format == "rec" && std::filesystem::path(out).extension() == ".rec")
    out = std::filesystem::path(out).replace_extension("").string();
  const PackSummary s = format == "rec" ? pack_folders_rec(args.all("in"), out, h, w)
                                        : pack_folders(args.all("in"), out, h, w);
  std::printf("packed %lld images of %lld identities into %s%s", (long long)s.images,
              (long long)s.identities, out.c_str(),
              format == "rec" ? ".rec (+ .idx, .names, property)" : "");
  if (s.skipped)
    std::printf(" (%lld unreadable or wrongly sized images skipped)", (long long)s.skipped);
  std::printf("\n");
  return 0;
}

}  // namespace mf::apps
