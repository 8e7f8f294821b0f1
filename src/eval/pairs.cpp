#include "eval/pairs.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>
#include <unordered_map>

#include "data/bin_pack.h"
#include "data/image.h"
#include "util/error.h"

namespace mf::eval {

namespace {

// A list file read line by line; blank lines (and, optionally, '#' comments) skipped.
class LineReader {
 public:
  LineReader(const std::string& file, bool comments) : file_(file), comments_(comments) {
    in_.open(file);
    MF_CHECK(in_.good(), "cannot open pair list ", file);
  }
  // The fields of the next non-blank line; false at the end of the file.
  bool next(std::vector<std::string>& fields) {
    std::string text;
    while (std::getline(in_, text)) {
      ++line_;
      if (!text.empty() && text.back() == '\r') text.pop_back();  // CRLF files
      fields.clear();
      std::istringstream split(text);  // splits on spaces and tabs alike
      for (std::string field; split >> field;) fields.push_back(field);
      if (fields.empty()) continue;
      if (comments_ && fields[0][0] == '#') continue;
      return true;
    }
    MF_CHECK(!in_.bad(), "error reading ", file_);
    return false;
  }
  int line() const { return line_; }
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  bool comments_;
  std::ifstream in_;
  int line_ = 0;
};

#define MF_FAIL_AT(reader, ...) MF_FAIL((reader).file(), ":", (reader).line(), ": ", __VA_ARGS__)

// A whole-field integer, or false.
bool parse_int(const std::string& field, int64_t& value) {
  const char* end = field.data() + field.size();
  const auto result = std::from_chars(field.data(), end, value);
  return result.ec == std::errc() && result.ptr == end;
}

int64_t positive_int(const LineReader& reader, const std::string& field, const char* what) {
  int64_t value = 0;
  if (!parse_int(field, value) || value < 1 || value > 1'000'000'000)
    MF_FAIL_AT(reader, what, " '", field, "' is not a positive integer (up to 10^9)");
  return value;
}

std::string join_path(const std::string& root, const std::string& path) {
  if (root.empty() || (!path.empty() && path[0] == '/')) return path;
  return root.back() == '/' ? root + path : root + "/" + path;
}

// Adds pairs while giving every distinct image path one index.
class ListBuilder {
 public:
  explicit ListBuilder(PairList& list) : list_(list) {}
  void add(std::string path_a, std::string path_b, bool same, int fold, int line) {
    Pair p;
    p.a = index(path_a);
    p.b = index(path_b);
    p.path_a = std::move(path_a);
    p.path_b = std::move(path_b);
    p.same = same;
    p.fold = fold;
    p.line = line;
    list_.pairs.push_back(std::move(p));
  }

 private:
  int64_t index(const std::string& path) {
    const auto [it, inserted] = index_.try_emplace(path, int64_t(list_.images.size()));
    if (inserted) list_.images.push_back(path);
    return it->second;
  }
  PairList& list_;
  std::unordered_map<std::string, int64_t> index_;
};

}  // namespace

int64_t PairList::num_same() const {
  int64_t n = 0;
  for (const Pair& p : pairs) n += p.same;
  return n;
}

std::vector<uint8_t> PairList::labels() const {
  std::vector<uint8_t> out;
  out.reserve(pairs.size());
  for (const Pair& p : pairs) out.push_back(p.same ? 1 : 0);
  return out;
}

std::vector<int> PairList::folds() const {
  std::vector<int> out;
  out.reserve(pairs.size());
  for (const Pair& p : pairs) out.push_back(p.fold);
  return out;
}

std::string lfw_image_path(const std::string& root, const std::string& name, int index) {
  char number[16];
  std::snprintf(number, sizeof number, "_%04d.jpg", index);
  return join_path(root, name + "/" + name + number);
}

std::vector<int> consecutive_folds(int64_t n, int k) {
  MF_CHECK(k >= 1 && n >= k, "cannot split ", n, " pairs into ", k, " folds");
  std::vector<int> folds(n);
  int64_t start = 0;
  for (int f = 0; f < k; ++f) {
    const int64_t size = n / k + (f < n % k ? 1 : 0);
    for (int64_t i = start; i < start + size; ++i) folds[i] = f;
    start += size;
  }
  return folds;
}

PairList read_lfw_pairs(const std::string& file, const std::string& root) {
  LineReader reader(file, /*comments=*/false);
  std::vector<std::string> fields;
  MF_CHECK(reader.next(fields), file,
           ": empty file; an LFW pair list starts with a header `10 300` (View 2) or `N` (View 1)");
  PairList list;
  list.file = file;
  int64_t folds = 1, per_fold = 0;
  if (fields.size() == 2) {
    folds = positive_int(reader, fields[0], "header: the number of folds");
    per_fold = positive_int(reader, fields[1], "header: the number of matched pairs per fold");
    list.protocol = "lfw-view2";
  } else if (fields.size() == 1) {
    per_fold = positive_int(reader, fields[0], "header: the number of matched pairs");
    list.protocol = "lfw-view1";
  } else {
    MF_FAIL_AT(reader,
               "expected a header `folds pairs_per_fold` (View 2, e.g. `10 300`) or `pairs` "
               "(View 1, e.g. `500`), got ",
               fields.size(), " fields");
  }
  MF_CHECK(folds <= 1000 && per_fold <= 10'000'000, file, ":", reader.line(),
           ": implausible header (", folds, " folds of ", per_fold, " pairs)");
  list.num_folds = static_cast<int>(folds);
  const int header_line = reader.line();
  const int64_t expected = folds * 2 * per_fold;
  std::ostringstream describe;
  describe << "header (line " << header_line << ") announces ";
  if (list.protocol == "lfw-view2") describe << folds << " folds of ";
  describe << per_fold << " matched then " << per_fold << " mismatched pairs, " << expected
           << " in all";
  const std::string layout = describe.str();

  ListBuilder builder(list);
  list.pairs.reserve(std::min<int64_t>(expected, 1 << 16));  // the header is not trusted yet
  int64_t count = 0;
  while (reader.next(fields)) {
    if (count == expected) MF_FAIL_AT(reader, "more pairs than the ", layout);
    const int fold = static_cast<int>(count / (2 * per_fold));
    const bool matched = count % (2 * per_fold) < per_fold;
    const size_t want = matched ? 3 : 4;
    if (fields.size() != 3 && fields.size() != 4)
      MF_FAIL_AT(reader, "expected `name i j` (matched) or `name1 i name2 j` (mismatched), got ",
                 fields.size(), " fields");
    if (fields.size() != want)
      MF_FAIL_AT(reader, "expected a ",
                 matched ? "matched pair `name i j`" : "mismatched pair `name1 i name2 j`",
                 " (pair ", count % (2 * per_fold) + 1, " of ", 2 * per_fold,
                 list.protocol == "lfw-view2" ? " in fold " + std::to_string(fold + 1) : "",
                 ") but found a ", matched ? "mismatched" : "matched", " one: the ", layout);
    if (matched) {
      const int i = static_cast<int>(positive_int(reader, fields[1], "image number"));
      const int j = static_cast<int>(positive_int(reader, fields[2], "image number"));
      builder.add(lfw_image_path(root, fields[0], i), lfw_image_path(root, fields[0], j), true,
                  fold, reader.line());
    } else {
      const int i = static_cast<int>(positive_int(reader, fields[1], "image number"));
      const int j = static_cast<int>(positive_int(reader, fields[3], "image number"));
      builder.add(lfw_image_path(root, fields[0], i), lfw_image_path(root, fields[2], j), false,
                  fold, reader.line());
    }
    ++count;
  }
  MF_CHECK(count == expected, file, ":", reader.line(), ": the file ends after ", count,
           " pairs but the ", layout);
  return list;
}

PairList read_generic_pairs(const std::string& file, const std::string& root) {
  LineReader reader(file, /*comments=*/true);
  PairList list;
  list.file = file;
  list.protocol = "pairs";
  ListBuilder builder(list);
  std::vector<std::string> fields;
  int fold_column = -1;  // unknown until the first line: 0 without, 1 with
  int first_line = 0;
  int max_fold = 0;
  while (reader.next(fields)) {
    if (fields.size() != 3 && fields.size() != 4)
      MF_FAIL_AT(reader, "expected `path_a path_b label [fold]`, got ", fields.size(), " fields");
    const int has_fold = fields.size() == 4 ? 1 : 0;
    if (fold_column < 0) {
      fold_column = has_fold;
      first_line = reader.line();
    }
    if (has_fold != fold_column)
      MF_FAIL_AT(reader, has_fold ? "a fold column here but none" : "no fold column here but one",
                 " on line ", first_line, ": give the fold on every line or on none");
    if (fields[2] != "0" && fields[2] != "1")
      MF_FAIL_AT(reader, "label '", fields[2], "' must be 1 (same identity) or 0 (different)");
    int64_t fold = 0;
    if (has_fold) {
      if (!parse_int(fields[3], fold) || fold < 0 || fold > 9)
        MF_FAIL_AT(reader, "fold '", fields[3], "' must be an integer from 0 to 9");
      max_fold = std::max(max_fold, static_cast<int>(fold));
    }
    builder.add(join_path(root, fields[0]), join_path(root, fields[1]), fields[2] == "1",
                static_cast<int>(fold), reader.line());
  }
  MF_CHECK(!list.pairs.empty(), file, ": no pairs (expected lines `path_a path_b label [fold]`)");
  if (fold_column == 1) {
    list.num_folds = max_fold + 1;
    std::vector<int64_t> sizes(list.num_folds, 0);
    for (const Pair& p : list.pairs) ++sizes[p.fold];
    for (int f = 0; f < list.num_folds; ++f)
      MF_CHECK(sizes[f] > 0, file, ": fold ", f, " has no pairs although folds up to ", max_fold,
               " are used");
  } else {
    MF_CHECK(list.pairs.size() >= 10, file, ": ", list.pairs.size(),
             " pairs are too few to split into 10 folds");
    list.num_folds = 10;
    const std::vector<int> folds = consecutive_folds(int64_t(list.pairs.size()), 10);
    for (size_t i = 0; i < folds.size(); ++i) list.pairs[i].fold = folds[i];
  }
  return list;
}

PairList read_bin_pairs(const std::string& file) {
  auto pack = std::make_shared<const BinPack>(read_bin_pack(file));
  MF_CHECK(pack->num_pairs() >= 10, file, ": ", pack->num_pairs(),
           " pairs are too few to split into 10 folds");
  PairList list;
  list.file = file;
  list.protocol = "bin";
  list.num_folds = 10;
  const std::vector<int> folds = consecutive_folds(pack->num_pairs(), 10);
  list.images.reserve(pack->images.size());
  for (size_t k = 0; k < pack->images.size(); ++k)
    list.images.push_back(file + "#" + std::to_string(k));
  for (int64_t i = 0; i < pack->num_pairs(); ++i) {
    Pair p;
    p.a = 2 * i;
    p.b = 2 * i + 1;
    p.path_a = list.images[p.a];
    p.path_b = list.images[p.b];
    p.same = pack->same[i] != 0;
    p.fold = folds[i];
    p.line = static_cast<int>(i + 1);
    list.pairs.push_back(std::move(p));
  }
  list.read_image = [pack](int64_t i, int H, int W, float* out) {
    const std::string& bytes = pack->images[i];
    decode_face_into(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                     pack->path + " image " + std::to_string(i), H, W, out,
                     {.crop_center = W != H});
  };
  return list;
}

}  // namespace mf::eval
