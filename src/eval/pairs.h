// Verification pair lists: the official LFW formats and a generic one.
//
// LFW (read_lfw_pairs; tab- or space-separated; image i of a person is ROOT/name/name_%04d.jpg,
// with i 1-based):
//   View 2 pairs.txt   header `F N` (officially `10 300`), then for each of the F folds N matched
//                      lines `name i j` followed by N mismatched lines `name1 i name2 j`.
//                      Fold f is lines 2 + 2N·f … 1 + 2N·(f + 1).                 → "lfw-view2"
//   View 1 pairsDev*   header `N` (1100 for DevTrain, 500 for DevTest), then N matched and N
//                      mismatched lines; a single fold.                            → "lfw-view1"
// The header is checked against the body: a pair of the wrong kind where the header puts the
// other kind, a short file or extra lines are errors naming FILE:LINE (third-party copies carry
// other headers, e.g. a single `3000` in front of the View 2 body).
//
// Generic (read_generic_pairs): one pair a line, `path_a path_b label [fold]`, label 1 for the
// same identity and 0 for different ones; paths are relative to ROOT unless absolute and cannot
// contain spaces. The optional fold column (0–9) must be given on every line or on none; without
// it the pairs are split into 10 consecutive blocks (sklearn KFold(10) without shuffling: the
// first n mod 10 blocks hold one pair more). Blank lines and lines starting with '#' are skipped.
//                                                                                  → "pairs"
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mf::eval {

struct Pair {
  std::string path_a, path_b;
  int64_t a = 0, b = 0;  // indices into PairList::images
  bool same = false;
  int fold = 0;
  int line = 0;  // line of the list file, for messages
};

struct PairList {
  std::string file;      // the list that was read
  std::string protocol;  // "lfw-view2", "lfw-view1" or "pairs"
  int num_folds = 0;     // folds are 0 … num_folds − 1; 1 for a single-fold list (View 1)
  std::vector<Pair> pairs;
  // Every image once, in order of first use: embed these, then score pair p with
  // embeddings[p.a] · embeddings[p.b].
  std::vector<std::string> images;
  // When set, images[i] is only a name and this decodes image i into 3·H·W floats (images held in
  // memory, e.g. a .bin validation pack); otherwise images[i] is a file path.
  std::function<void(int64_t i, int H, int W, float* out)> read_image;

  int64_t num_same() const;
  std::vector<uint8_t> labels() const;  // 1 same, 0 different, in pair order
  std::vector<int> folds() const;
};

PairList read_lfw_pairs(const std::string& file, const std::string& root);
PairList read_generic_pairs(const std::string& file, const std::string& root);

// An insightface validation pack (lfw.bin, cfp_fp.bin, …; data/bin_pack.h) as a pair list with
// its images in memory: image k is named FILE#k, pair i is images 2i and 2i+1, and the folds are
// insightface's — 10 consecutive blocks (KFold(10) without shuffling).        → "bin"
// Images larger than the network input are centre-cropped when the network is narrower than tall
// (112×112 faces into 112×96), as everywhere else.
PairList read_bin_pairs(const std::string& file);

// ROOT/name/name_%04d.jpg (just name/name_%04d.jpg when root is empty).
std::string lfw_image_path(const std::string& root, const std::string& name, int index);

// Fold of each of n items split into k consecutive blocks as sklearn's KFold(k, shuffle=False):
// sizes n / k, the first n % k blocks one larger.
std::vector<int> consecutive_folds(int64_t n, int k);

}  // namespace mf::eval
