// insightface's training packs: dmlc RecordIO (`train.rec`), its text index (`train.idx`) and the
// `property` file. Byte layout (little-endian):
//   chunk   uint32 magic 0xced7230a, uint32 lrec, `len` bytes, zero padding to a multiple of 4;
//           cflag = lrec >> 29 (0 whole record, 1 first, 2 middle, 3 last part), len = lrec &
//           2²⁹−1. A writer splits a record wherever the magic occurs at a 4-byte-aligned offset of
//           the payload and drops those 4 bytes; a reader joins the parts putting them back.
//   payload uint32 flag, float32 label, uint64 id, uint64 id2 (Python struct `IfQQ`), then `flag`
//           float32 labels when flag > 0, then the encoded image.
//   .idx    one `key<TAB>offset` line per record (offset of its first chunk).
//   layout  key 0: meta record, flag 2, labels [first_identity_key, end_key]; keys 1 …
//           first_identity_key − 1: images; then one record per identity with labels
//           [first_image_key, end_image_key). Packs without the meta record (im2rec's): every key
//           is an image. An image's class is labels[0] when flag > 0, otherwise `label`.
// Records are read on demand with pread (thread-safe; the pack never sits in memory). Every
// malformed byte is an mf::Error naming the file, the byte offset and, where known, the key.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace mf::recordio {

constexpr uint32_t kMagic = 0xced7230a;
constexpr size_t kHeaderBytes = 24;

struct Header {
  uint32_t flag = 0;
  float label = 0;
  uint64_t id = 0, id2 = 0;
  std::vector<float> labels;  // `flag` values when flag > 0
  size_t image_offset = 0;    // where the image bytes start in the payload
  // The class: labels[0] when there is a label array, else `label`.
  float class_label() const { return labels.empty() ? label : labels[0]; }
};

// Parses the header at the start of a payload; `where` names the record in messages.
Header parse_header(const uint8_t* payload, size_t size, const std::string& where);
// Header bytes followed by the image bytes.
std::vector<uint8_t> make_payload(const Header& header, const uint8_t* image, size_t image_size);

// A .rec file opened for positioned reads.
class Reader {
 public:
  explicit Reader(const std::string& path);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The payload of the record whose first chunk starts at `offset`, parts joined. `next` (if
  // given) receives the offset after the record's last chunk. `key` (≥ 0) only names it in errors.
  std::vector<uint8_t> read(uint64_t offset, uint64_t* next = nullptr, int64_t key = -1) const;
  uint64_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  void pread_exact(void* dst, size_t n, uint64_t offset, const std::string& what) const;
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

struct IndexEntry {
  uint64_t key = 0, offset = 0;
};
// The .idx file, sorted by key; checks every line's syntax, duplicate keys and that each offset
// lies inside a .rec of `rec_size` bytes.
std::vector<IndexEntry> read_index(const std::string& idx_path, uint64_t rec_size);
// The .idx beside a .rec: the same name with the extension .idx.
std::string index_path_of(const std::string& rec_path);

// Writes a .rec (to `path`.tmp; finish() fsyncs and renames it and writes the .idx atomically).
class Writer {
 public:
  explicit Writer(const std::string& path);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  void write(uint64_t key, const std::vector<uint8_t>& payload);
  void finish(const std::string& idx_path);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  uint64_t offset_ = 0;
  std::vector<IndexEntry> index_;
};

// Scans a .rec from its first byte and writes its .idx (key = each record's header id).
// Returns the number of records.
int64_t reindex(const std::string& rec_path, const std::string& idx_path);

// A training pack opened for reading images: where each image record is and its class.
struct TrainingPack {
  std::string rec_path;
  std::vector<uint64_t> offsets;  // per image, its record's offset
  std::vector<uint64_t> keys;     // per image, its key (messages)
  std::vector<int64_t> labels;    // per image, its class
  int64_t num_classes = 0;
  bool meta_layout = false;  // insightface's meta record at key 0 was found
};
// Reads the .idx, `property` (when present in the same folder) and the meta and identity records
// (or every record's header when there is no meta record). Labels must lie in [0, num_classes).
TrainingPack open_training_pack(const std::string& rec_path, const Reader& reader);

}  // namespace mf::recordio
