// A thin RAII layer over the HDF5 C API: tensors, integer arrays, strings and attributes, with
// errors that name the file and the object. Paths inside a file use '/' ("model/conv1.weight");
// writing creates intermediate groups.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tensor/tensor.h"

namespace mf::h5 {

class File {
 public:
  enum class Mode { kRead, kReadWrite, kCreate };  // kCreate truncates
  File(const std::string& path, Mode mode);
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  const std::string& path() const { return path_; }
  bool exists(const std::string& name) const;                     // a dataset or group at this path
  std::vector<std::string> list(const std::string& group) const;  // member names, sorted
  bool is_group(const std::string& name) const;                   // a group (not a dataset)

  // Datasets. read_* convert from any stored numeric type; shape receives the dimensions.
  Tensor read_tensor(const std::string& name) const;  // float32
  std::vector<double> read_doubles(const std::string& name,
                                   std::vector<int64_t>* shape = nullptr) const;
  std::vector<int64_t> read_int64(const std::string& name,
                                  std::vector<int64_t>* shape = nullptr) const;
  std::vector<std::string> read_strings(const std::string& name) const;
  std::vector<int64_t> shape_of(const std::string& name) const;  // a dataset's dimensions
  // Rows [first, first + count) along the first axis of a uint8 dataset, into out (packed images).
  void read_uint8_rows(const std::string& name, int64_t first, int64_t count, uint8_t* out) const;
  // From now on float datasets (write_tensor, write_floats) are written chunked with HDF5's
  // Fletcher-32 checksum filter, which HDF5 verifies on every read: a flipped byte in the data
  // fails the read instead of loading a wrong number. Checkpoints turn it on.
  void set_checksums(bool on) { checksums_ = on; }
  void write_tensor(const std::string& name, const Tensor& t);
  void write_floats(const std::string& name, const float* data, const std::vector<int64_t>& shape);
  void write_doubles(const std::string& name, const double* data,
                     const std::vector<int64_t>& shape);
  void write_int64(const std::string& name, const std::vector<int64_t>& values,
                   std::vector<int64_t> shape = {});
  void write_uint8(const std::string& name, const uint8_t* data, const std::vector<int64_t>& shape);
  void write_strings(const std::string& name, const std::vector<std::string>& values);

  // Attributes on an object (a group or dataset path; "/" is the root).
  bool has_attr(const std::string& object, const std::string& attr) const;
  int64_t read_attr_int(const std::string& object, const std::string& attr) const;
  double read_attr_double(const std::string& object, const std::string& attr) const;
  std::string read_attr_string(const std::string& object, const std::string& attr) const;
  std::vector<int64_t> read_attr_ints(const std::string& object, const std::string& attr) const;
  void write_attr(const std::string& object, const std::string& attr, int64_t value);
  void write_attr(const std::string& object, const std::string& attr, double value);
  void write_attr(const std::string& object, const std::string& attr, const std::string& value);
  void write_attr(const std::string& object, const std::string& attr,
                  const std::vector<int64_t>& values);

  void close();  // flushes and closes, throwing on failure; the destructor closes silently

 private:
  void ensure_group(const std::string& name);
  std::string path_;
  bool checksums_ = false;
  int64_t id_ = -1;  // hid_t
};

// Writes through a temporary file beside `path` and renames it over `path` only after `write`
// returned and the data reached the disk, so a crash never leaves a half-written file.
template <class WriteFn>
void write_atomically(const std::string& path, WriteFn&& write);
void commit_atomic(const std::string& tmp_path, const std::string& path);

template <class WriteFn>
void write_atomically(const std::string& path, WriteFn&& write) {
  const std::string tmp = path + ".tmp";
  try {
    File file(tmp, File::Mode::kCreate);
    write(file);
    file.close();  // checked: a full disk fails here, before anything is renamed
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  commit_atomic(tmp, path);
}

}  // namespace mf::h5
