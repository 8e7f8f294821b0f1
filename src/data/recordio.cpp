#include "data/recordio.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"
#include "util/json.h"

namespace mf::recordio {

namespace fs = std::filesystem;

namespace {

constexpr uint32_t kLengthMask = (1u << 29) - 1;

uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void append_u32(std::vector<uint8_t>& out, uint32_t v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), p, p + 4);
}

std::string record_name(const std::string& path, uint64_t offset, int64_t key) {
  std::ostringstream s;
  s << path;
  if (key >= 0) s << " key " << key;
  s << " (record at byte " << offset << ")";
  return s.str();
}

std::string reindex_hint(const std::string& rec) {
  return "; if the .idx is out of date, rebuild it with `marginface pack --reindex " + rec + "`";
}

}  // namespace

Header parse_header(const uint8_t* payload, size_t size, const std::string& where) {
  MF_CHECK(size >= kHeaderBytes, where, ": payload of ", size, " bytes is shorter than the ",
           kHeaderBytes, "-byte record header");
  Header h;
  std::memcpy(&h.flag, payload, 4);
  std::memcpy(&h.label, payload + 4, 4);
  std::memcpy(&h.id, payload + 8, 8);
  std::memcpy(&h.id2, payload + 16, 8);
  MF_CHECK(h.flag <= (size - kHeaderBytes) / 4, where, ": header flag ", h.flag,
           " announces more label values than the ", size, "-byte payload holds");
  h.labels.resize(h.flag);
  if (h.flag) std::memcpy(h.labels.data(), payload + kHeaderBytes, 4 * size_t(h.flag));
  h.image_offset = kHeaderBytes + 4 * size_t(h.flag);
  return h;
}

std::vector<uint8_t> make_payload(const Header& header, const uint8_t* image, size_t image_size) {
  std::vector<uint8_t> out;
  out.reserve(kHeaderBytes + 4 * header.labels.size() + image_size);
  append_u32(out, static_cast<uint32_t>(header.labels.size()));
  uint32_t label_bits;
  std::memcpy(&label_bits, &header.label, 4);
  append_u32(out, label_bits);
  const auto* id = reinterpret_cast<const uint8_t*>(&header.id);
  out.insert(out.end(), id, id + 8);
  const auto* id2 = reinterpret_cast<const uint8_t*>(&header.id2);
  out.insert(out.end(), id2, id2 + 8);
  for (float v : header.labels) {
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    append_u32(out, bits);
  }
  out.insert(out.end(), image, image + image_size);
  return out;
}

Reader::Reader(const std::string& path) : path_(path) {
  MF_CHECK(fs::is_regular_file(path), "RecordIO pack not found (or not a file): ", path);
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MF_CHECK(fd_ >= 0, "cannot open ", path, ": ", std::strerror(errno));
  const off_t end = ::lseek(fd_, 0, SEEK_END);
  if (end < 0) {
    ::close(fd_);
    MF_FAIL("cannot read the size of ", path, ": ", std::strerror(errno));
  }
  size_ = static_cast<uint64_t>(end);
}

Reader::~Reader() {
  if (fd_ >= 0) ::close(fd_);
}

void Reader::pread_exact(void* dst, size_t n, uint64_t offset, const std::string& what) const {
  auto* p = static_cast<uint8_t*>(dst);
  size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, p + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    MF_CHECK(got >= 0, what, ": read failed: ", std::strerror(errno));
    MF_CHECK(got > 0, what, ": the file ends early (truncated .rec?)");
    done += static_cast<size_t>(got);
  }
}

std::vector<uint8_t> Reader::read(uint64_t offset, uint64_t* next, int64_t key) const {
  std::vector<uint8_t> payload;
  uint64_t at = offset;
  bool first = true;
  while (true) {
    const std::string where = record_name(path_, at, key);
    MF_CHECK(at + 8 <= size_, where, ": the file ends (", size_, " bytes) before the chunk header",
             first ? reindex_hint(path_) : std::string());
    uint8_t head[8];
    pread_exact(head, 8, at, where);
    const uint32_t magic = load_u32(head), lrec = load_u32(head + 4);
    if (magic != kMagic) {
      std::ostringstream hex;
      hex << std::hex << magic;
      MF_FAIL(where, ": bad magic 0x", hex.str(), " (expected 0xced7230a)",
              first ? reindex_hint(path_) : std::string());
    }
    const uint32_t cflag = lrec >> 29, len = lrec & kLengthMask;
    MF_CHECK(first ? (cflag == 0 || cflag == 1) : (cflag == 2 || cflag == 3), where,
             ": chunk flag ", cflag,
             first ? " where a record starts (expected 0 or 1)"
                   : " inside a split record (expected 2 or 3)");
    MF_CHECK(at + 8 + len <= size_, where, ": a ", len, "-byte chunk runs past the end of the ",
             size_, "-byte file (truncated .rec?)");
    if (!first) append_u32(payload, kMagic);  // the writer dropped it where it split
    const size_t old = payload.size();
    payload.resize(old + len);
    pread_exact(payload.data() + old, len, at + 8, where);
    at += 8 + ((uint64_t(len) + 3) & ~uint64_t(3));
    first = false;
    if (cflag == 0 || cflag == 3) break;
  }
  if (next) *next = at;
  return payload;
}

std::string index_path_of(const std::string& rec_path) {
  return fs::path(rec_path).replace_extension(".idx").string();
}

std::vector<IndexEntry> read_index(const std::string& idx_path, uint64_t rec_size) {
  std::ifstream in(idx_path);
  MF_CHECK(in.good(), "cannot open the index ", idx_path);
  std::vector<IndexEntry> entries;
  std::string line;
  for (int64_t line_no = 1; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    unsigned long long key = 0, offset = 0;
    int used = 0;
    MF_CHECK(std::sscanf(line.c_str(), "%llu %llu%n", &key, &offset, &used) == 2 &&
                 line.find_first_not_of(" \t", used) == std::string::npos &&
                 line.find('-') == std::string::npos,
             idx_path, ":", line_no, ": expected 'key<TAB>offset', got '", line.substr(0, 80), "'");
    MF_CHECK(offset + 8 <= rec_size, idx_path, ":", line_no, ": key ", key, " points to byte ",
             offset, ", past the end of the ", rec_size,
             "-byte .rec (truncated .rec or an .idx of "
             "another pack?)");
    entries.push_back({key, offset});
  }
  MF_CHECK(!entries.empty(), idx_path, ": the index lists no records");
  std::sort(entries.begin(), entries.end(),
            [](const IndexEntry& a, const IndexEntry& b) { return a.key < b.key; });
  for (size_t i = 1; i < entries.size(); ++i)
    MF_CHECK(entries[i].key != entries[i - 1].key, idx_path, ": key ", entries[i].key,
             " is listed twice");
  return entries;
}

Writer::Writer(const std::string& path) : path_(path) {
  file_ = std::fopen((path + ".tmp").c_str(), "wb");
  MF_CHECK(file_, "cannot write ", path, " (opening ", path, ".tmp failed: ", std::strerror(errno),
           ")");
}

Writer::~Writer() {
  if (file_) {
    std::fclose(file_);
    std::error_code ec;
    fs::remove(path_ + ".tmp", ec);
  }
}

// dmlc's split rule: the magic at a 4-byte-aligned payload offset ends a part and is dropped.
void Writer::write(uint64_t key, const std::vector<uint8_t>& payload) {
  MF_CHECK(payload.size() <= kLengthMask, path_, ": record of ", payload.size(),
           " bytes is larger than RecordIO's 2^29 − 1");
  index_.push_back({key, offset_});
  auto put_chunk = [&](uint32_t cflag, const uint8_t* data, size_t len) {
    std::vector<uint8_t> head;
    append_u32(head, kMagic);
    append_u32(head, (cflag << 29) | static_cast<uint32_t>(len));
    const size_t pad = (4 - len % 4) % 4;
    static const uint8_t zeros[4] = {0, 0, 0, 0};
    MF_CHECK(std::fwrite(head.data(), 1, 8, file_) == 8 &&
                 std::fwrite(data, 1, len, file_) == len &&
                 std::fwrite(zeros, 1, pad, file_) == pad,
             "error writing ", path_, ".tmp: ", std::strerror(errno));
    offset_ += 8 + len + pad;
  };
  const size_t aligned = payload.size() / 4 * 4;
  size_t start = 0;
  for (size_t i = 0; i < aligned; i += 4) {
    if (load_u32(payload.data() + i) != kMagic) continue;
    put_chunk(start == 0 ? 1 : 2, payload.data() + start, i - start);
    start = i + 4;
  }
  put_chunk(start == 0 ? 0 : 3, payload.data() + start, payload.size() - start);
}

void Writer::finish(const std::string& idx_path) {
  MF_CHECK(std::fflush(file_) == 0 && ::fsync(::fileno(file_)) == 0, "error writing ", path_,
           ".tmp: ", std::strerror(errno));
  MF_CHECK(std::fclose(file_) == 0, "error closing ", path_, ".tmp: ", std::strerror(errno));
  file_ = nullptr;
  std::ostringstream idx;
  for (const auto& e : index_) idx << e.key << '\t' << e.offset << '\n';
  json::write_file(idx_path, idx.str());
  std::error_code ec;
  fs::rename(path_ + ".tmp", path_, ec);
  MF_CHECK(!ec, "cannot write ", path_, ": renaming ", path_, ".tmp failed: ", ec.message());
}

int64_t reindex(const std::string& rec_path, const std::string& idx_path) {
  Reader reader(rec_path);
  std::ostringstream idx;
  std::vector<uint64_t> seen;
  int64_t count = 0;
  for (uint64_t at = 0; at < reader.size();) {
    uint64_t next = 0;
    const std::vector<uint8_t> payload = reader.read(at, &next);
    const Header h = parse_header(payload.data(), payload.size(), record_name(rec_path, at, -1));
    seen.push_back(h.id);
    idx << h.id << '\t' << at << '\n';
    ++count;
    at = next;
  }
  MF_CHECK(count > 0, rec_path, ": no records");
  std::sort(seen.begin(), seen.end());
  const auto dup = std::adjacent_find(seen.begin(), seen.end());
  MF_CHECK(dup == seen.end(), rec_path, ": two records carry the id ", *dup,
           " in their header, so the id cannot serve as the key");
  json::write_file(idx_path, idx.str());
  return count;
}

namespace {

// `property`: "num_classes,H,W" (one line); 0 when the file is absent.
int64_t read_property(const fs::path& path) {
  if (!fs::exists(path)) return 0;
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  long long classes = 0, h = 0, w = 0;
  int used = 0;
  MF_CHECK(
      std::sscanf(line.c_str(), "%lld,%lld,%lld%n", &classes, &h, &w, &used) == 3 && classes > 0 &&
          h > 0 && w > 0 && line.find_first_not_of(" \t\r", used) == std::string::npos,
      path.string(), ":1: expected 'num_classes,height,width', got '", line.substr(0, 80), "'");
  return classes;
}

int64_t as_label(float value, const std::string& where) {
  MF_CHECK(std::isfinite(value) && value >= 0 && value < 16777216.0f && value == std::floor(value),
           where, ": label ", value, " is not a non-negative integer");
  return static_cast<int64_t>(value);
}

}  // namespace

TrainingPack open_training_pack(const std::string& rec_path, const Reader& reader) {
  const std::string idx_path = index_path_of(rec_path);
  MF_CHECK(fs::exists(idx_path), rec_path, ": its index ", idx_path,
           " is missing; build it with `marginface pack --reindex ", rec_path, "`");
  const std::vector<IndexEntry> index = read_index(idx_path, reader.size());
  const fs::path property_path = fs::path(rec_path).parent_path() / "property";
  const int64_t property_classes = read_property(property_path);

  auto offset_of = [&](uint64_t key) -> const IndexEntry* {
    auto it = std::lower_bound(index.begin(), index.end(), key,
                               [](const IndexEntry& e, uint64_t k) { return e.key < k; });
    return it != index.end() && it->key == key ? &*it : nullptr;
  };
  auto header_of = [&](const IndexEntry& e) {
    const std::vector<uint8_t> payload = reader.read(e.offset, nullptr, int64_t(e.key));
    return parse_header(payload.data(), payload.size(),
                        record_name(rec_path, e.offset, int64_t(e.key)));
  };

  TrainingPack pack;
  pack.rec_path = rec_path;
  int64_t max_label = -1;
  auto add_image = [&](const IndexEntry& e, int64_t label) {
    pack.offsets.push_back(e.offset);
    pack.keys.push_back(e.key);
    pack.labels.push_back(label);
    max_label = std::max(max_label, label);
  };

  const IndexEntry* meta = offset_of(0);
  Header meta_header;
  if (meta) meta_header = header_of(*meta);
  if (meta && meta_header.flag >= 2) {
    // insightface's layout: label ranges from the identity records (O(identities) reads).
    pack.meta_layout = true;
    const std::string where = record_name(rec_path, meta->offset, 0);
    const int64_t first_id = as_label(meta_header.labels[0], where + " (meta first identity key)");
    const int64_t end_id = as_label(meta_header.labels[1], where + " (meta end key)");
    MF_CHECK(first_id >= 1 && end_id >= first_id, where, ": meta record holds the key range [",
             first_id, ", ", end_id, "), not a valid identity range");
    if (end_id == first_id) {
      // A meta record without identity records: the images' own headers give the labels.
      for (int64_t k = 1; k < first_id; ++k) {
        const IndexEntry* img = offset_of(uint64_t(k));
        MF_CHECK(img, idx_path, ": image key ", k, " (below the meta record's ", first_id,
                 ") is not listed");
        add_image(*img,
                  as_label(header_of(*img).class_label(), record_name(rec_path, img->offset, k)));
      }
    }
    for (int64_t id_key = first_id; id_key < end_id; ++id_key) {
      const IndexEntry* e = offset_of(uint64_t(id_key));
      MF_CHECK(e, idx_path, ": identity record key ", id_key,
               " (from the meta record) is not listed");
      const Header h = header_of(*e);
      const std::string id_where = record_name(rec_path, e->offset, id_key);
      MF_CHECK(h.flag >= 2, id_where,
               ": an identity record must carry [first_image_key, "
               "end_image_key), its flag is ",
               h.flag);
      const int64_t a = as_label(h.labels[0], id_where), b = as_label(h.labels[1], id_where);
      MF_CHECK(a >= 1 && b >= a && b <= first_id, id_where, ": image key range [", a, ", ", b,
               ") lies outside the image keys [1, ", first_id, ")");
      const int64_t label = id_key - first_id;
      for (int64_t k = a; k < b; ++k) {
        const IndexEntry* img = offset_of(uint64_t(k));
        MF_CHECK(img, idx_path, ": image key ", k, " (identity record ", id_key, ") is not listed");
        add_image(*img, label);
      }
      // The identity records are in label order in insightface's packer; check it on the first
      // image of each identity (one read per identity) so a pack numbered otherwise fails here,
      // not with wrong labels.
      if (b > a) {
        const IndexEntry* img = offset_of(uint64_t(a));
        const std::string img_where = record_name(rec_path, img->offset, a);
        const int64_t own = as_label(header_of(*img).class_label(), img_where);
        MF_CHECK(own == label, img_where, ": the image's own label is ", own,
                 " but its identity record is number ", label,
                 " in the pack; identity records must be in label order");
      }
    }
  } else {
    // No meta record: every listed key is an image, labelled by its own header.
    for (const IndexEntry& e : index) {
      const std::string where = record_name(rec_path, e.offset, int64_t(e.key));
      add_image(e, as_label(header_of(e).class_label(), where));
    }
  }
  MF_CHECK(!pack.offsets.empty(), rec_path, ": the pack holds no image records");
  pack.num_classes = property_classes > 0 ? property_classes : max_label + 1;
  if (max_label >= pack.num_classes) {
    const auto it = std::find(pack.labels.begin(), pack.labels.end(), max_label);
    const size_t i = static_cast<size_t>(it - pack.labels.begin());
    MF_FAIL(rec_path, " key ", pack.keys[i], ": label ", max_label, " is not below the ",
            pack.num_classes, " classes that ", property_path.string(), " declares");
  }
  return pack;
}

}  // namespace mf::recordio
