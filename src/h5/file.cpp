#include "h5/file.h"

#include <fcntl.h>
#include <hdf5.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "util/error.h"
#include "util/file.h"

namespace mf::h5 {

namespace {

// Silences HDF5's own stderr dump once; our errors carry the context instead.
// No HDF5 library cleanup at exit: every file is closed (and checked) by its File, and HDF5's own
// atexit close of a file whose write failed (a full disk) crashed in H5F__close_cb. Must run
// before the first HDF5 call, hence a static initialiser.
const bool kNoHdf5AtExit = [] {
  H5dont_atexit();
  return true;
}();

void quiet_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
  (void)kNoHdf5AtExit;
}

// Closes any HDF5 handle on scope exit.
struct Handle {
  hid_t id;
  explicit Handle(hid_t h) : id(h) {}
  ~Handle() {
    if (id < 0) return;
    switch (H5Iget_type(id)) {
      case H5I_DATASET:
        H5Dclose(id);
        break;
      case H5I_GROUP:
        H5Gclose(id);
        break;
      case H5I_DATASPACE:
        H5Sclose(id);
        break;
      case H5I_DATATYPE:
        H5Tclose(id);
        break;
      case H5I_ATTR:
        H5Aclose(id);
        break;
      case H5I_GENPROP_LST:
        H5Pclose(id);
        break;
      default:
        H5Oclose(id);
    }
  }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  operator hid_t() const { return id; }
};

std::vector<int64_t> dims_of(hid_t space) {
  const int rank = H5Sget_simple_extent_ndims(space);
  std::vector<hsize_t> d(std::max(rank, 0));
  if (rank > 0) H5Sget_simple_extent_dims(space, d.data(), nullptr);
  return {d.begin(), d.end()};
}

std::string parent_of(const std::string& name) {
  const auto slash = name.find_last_of('/');
  return slash == std::string::npos || slash == 0 ? std::string("/") : name.substr(0, slash);
}

}  // namespace

File::File(const std::string& path, Mode mode) : path_(path) {
  quiet_hdf5();
  if (mode == Mode::kCreate) {
    id_ = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    MF_CHECK(id_ >= 0, "cannot create HDF5 file '", path, "'");
    return;
  }
  MF_CHECK(std::filesystem::exists(path), "file not found: '", path, "'");
  MF_CHECK(H5Fis_hdf5(path.c_str()) > 0, "'", path,
           "' is not an HDF5 file (truncated or corrupt?)");
  id_ = H5Fopen(path.c_str(), mode == Mode::kRead ? H5F_ACC_RDONLY : H5F_ACC_RDWR, H5P_DEFAULT);
  MF_CHECK(id_ >= 0, "cannot open HDF5 file '", path, "' (truncated or corrupt?)");
}

File::~File() {
  if (id_ >= 0) H5Fclose(id_);
}

File::File(File&& other) noexcept : path_(std::move(other.path_)), id_(other.id_) {
  other.id_ = -1;
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    if (id_ >= 0) H5Fclose(id_);
    path_ = std::move(other.path_);
    id_ = other.id_;
    other.id_ = -1;
  }
  return *this;
}

bool File::exists(const std::string& name) const {
  if (name == "/" || name.empty()) return true;
  // Check each prefix: H5Lexists fails (rather than returning false) on a missing parent.
  std::string prefix;
  size_t start = name[0] == '/' ? 1 : 0;
  while (start <= name.size()) {
    const size_t slash = name.find('/', start);
    prefix = name.substr(0, slash);
    if (H5Lexists(id_, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return H5Oexists_by_name(id_, name.c_str(), H5P_DEFAULT) > 0;
}

std::vector<std::string> File::list(const std::string& group) const {
  MF_CHECK(exists(group), path_, ": no group '", group, "'");
  Handle g(H5Gopen2(id_, group.c_str(), H5P_DEFAULT));
  MF_CHECK(g >= 0, path_, ": '", group, "' is not a group");
  H5G_info_t info;
  H5Gget_info(g, &info);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len =
        H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT);
    std::string name(len, '\0');
    H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), len + 1, H5P_DEFAULT);
    names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

bool File::is_group(const std::string& name) const {
  if (!exists(name)) return false;
  H5O_info_t info;
#if H5_VERSION_GE(1, 12, 0)
  if (H5Oget_info_by_name3(id_, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return false;
#else
  if (H5Oget_info_by_name2(id_, name.c_str(), &info, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return false;
#endif
  return info.type == H5O_TYPE_GROUP;
}

namespace {
// A whole dataset converted by HDF5 to the memory type `mem_type` (T's native type).
template <class T>
std::vector<T> read_all(hid_t file, const std::string& path, const std::string& name,
                        hid_t mem_type, const char* as_what, std::vector<int64_t>* shape) {
  Handle ds(H5Dopen2(file, name.c_str(), H5P_DEFAULT));
  MF_CHECK(ds >= 0, path, ": missing dataset '", name, "'");
  Handle space(H5Dget_space(ds));
  const auto dims = dims_of(space);
  int64_t n = 1;
  for (auto d : dims) n *= d;
  std::vector<T> values(n);
  if (n > 0)
    MF_CHECK(H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data()) >= 0, path,
             ": cannot read dataset '", name, "' ", as_what);
  if (shape) *shape = dims;
  return values;
}
}  // namespace

std::vector<double> File::read_doubles(const std::string& name, std::vector<int64_t>* shape) const {
  return read_all<double>(id_, path_, name, H5T_NATIVE_DOUBLE, "as numbers (corrupt or truncated?)",
                          shape);
}

Tensor File::read_tensor(const std::string& name) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT));
  MF_CHECK(ds >= 0, path_, ": missing dataset '", name, "'");
  Handle space(H5Dget_space(ds));
  Tensor t = Tensor::empty(Shape(dims_of(space)));
  if (t.numel() > 0)
    MF_CHECK(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, t.data()) >= 0, path_,
             ": cannot read dataset '", name,
             "' (the file is damaged: truncated, or its checksum does not match)");
  return t;
}

std::vector<int64_t> File::read_int64(const std::string& name, std::vector<int64_t>* shape) const {
  return read_all<int64_t>(id_, path_, name, H5T_NATIVE_INT64, "as integers", shape);
}

std::vector<std::string> File::read_strings(const std::string& name) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT));
  MF_CHECK(ds >= 0, path_, ": missing dataset '", name, "'");
  Handle space(H5Dget_space(ds));
  const auto dims = dims_of(space);
  const size_t n = dims.empty() ? 1 : dims[0];
  Handle type(H5Dget_type(ds));
  MF_CHECK(H5Tget_class(type) == H5T_STRING, path_, ": dataset '", name, "' does not hold strings");
  std::vector<std::string> out;
  if (H5Tis_variable_str(type) > 0) {
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));
    std::vector<char*> raw(n, nullptr);
    MF_CHECK(H5Dread(ds, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) >= 0, path_,
             ": cannot read strings '", name, "'");
    for (char* s : raw) out.emplace_back(s ? s : "");
    H5Dvlen_reclaim(mem, space, H5P_DEFAULT, raw.data());
  } else {
    const size_t width = H5Tget_size(type);
    std::vector<char> raw(n * width);
    MF_CHECK(H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) >= 0, path_,
             ": cannot read strings '", name, "'");
    for (size_t i = 0; i < n; ++i) {
      std::string s(raw.data() + i * width, width);
      s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
      out.push_back(s);
    }
  }
  return out;
}

std::vector<int64_t> File::shape_of(const std::string& name) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT));
  MF_CHECK(ds >= 0, path_, ": missing dataset '", name, "'");
  Handle space(H5Dget_space(ds));
  return dims_of(space);
}

void File::read_uint8_rows(const std::string& name, int64_t first, int64_t count,
                           uint8_t* out) const {
  Handle ds(H5Dopen2(id_, name.c_str(), H5P_DEFAULT));
  MF_CHECK(ds >= 0, path_, ": missing dataset '", name, "'");
  Handle space(H5Dget_space(ds));
  const auto dims = dims_of(space);
  MF_CHECK(!dims.empty() && first >= 0 && count >= 0 && first + count <= dims[0], path_, ": rows [",
           first, ", ", first + count, ") outside dataset '", name, "'");
  std::vector<hsize_t> start(dims.size(), 0), extent(dims.begin(), dims.end());
  start[0] = first;
  extent[0] = count;
  H5Sselect_hyperslab(space, H5S_SELECT_SET, start.data(), nullptr, extent.data(), nullptr);
  Handle mem(H5Screate_simple(static_cast<int>(extent.size()), extent.data(), nullptr));
  MF_CHECK(H5Dread(ds, H5T_NATIVE_UINT8, mem, space, H5P_DEFAULT, out) >= 0, path_,
           ": cannot read rows of '", name, "' (corrupt or truncated?)");
}

void File::ensure_group(const std::string& name) {
  if (name.empty() || name == "/" || exists(name)) return;
  Handle lcpl(H5Pcreate(H5P_LINK_CREATE));
  H5Pset_create_intermediate_group(lcpl, 1);
  Handle g(H5Gcreate2(id_, name.c_str(), lcpl, H5P_DEFAULT, H5P_DEFAULT));
  MF_CHECK(g >= 0, path_, ": cannot create group '", name, "'");
}

namespace {
void write_dataset(hid_t file, const std::string& path, const std::string& name, hid_t mem_type,
                   hid_t file_type, const void* data, const std::vector<int64_t>& shape,
                   bool checksum = false) {
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(shape.empty()
                   ? H5Screate(H5S_SCALAR)
                   : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr));
  if (H5Lexists(file, name.c_str(), H5P_DEFAULT) > 0) H5Ldelete(file, name.c_str(), H5P_DEFAULT);
  // Fletcher-32 needs a chunked layout: one chunk holding the whole dataset (HDF5 chunks are
  // limited to 4 GiB; larger or empty datasets stay contiguous, without a checksum).
  Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  hsize_t elements = 1;
  for (const hsize_t d : dims) elements *= d;
  if (checksum && !dims.empty() && elements > 0 &&
      elements * H5Tget_size(file_type) < (1ull << 32)) {
    MF_CHECK(H5Pset_chunk(dcpl, static_cast<int>(dims.size()), dims.data()) >= 0 &&
                 H5Pset_fletcher32(dcpl) >= 0,
             path, ": cannot set up the checksum of dataset '", name, "'");
  }
  Handle ds(H5Dcreate2(file, name.c_str(), file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT));
  MF_CHECK(ds >= 0, path, ": cannot create dataset '", name, "'");
  MF_CHECK(H5Dwrite(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0, path,
           ": cannot write dataset '", name, "' (disk full?)");
}
}  // namespace

void File::write_floats(const std::string& name, const float* data,
                        const std::vector<int64_t>& shape) {
  ensure_group(parent_of(name));
  write_dataset(id_, path_, name, H5T_NATIVE_FLOAT, H5T_IEEE_F32LE, data, shape, checksums_);
}

void File::write_tensor(const std::string& name, const Tensor& t) {
  write_floats(name, t.data(), t.shape().to_vector());
}

void File::write_doubles(const std::string& name, const double* data,
                         const std::vector<int64_t>& shape) {
  ensure_group(parent_of(name));
  write_dataset(id_, path_, name, H5T_NATIVE_DOUBLE, H5T_IEEE_F64LE, data, shape);
}

void File::write_int64(const std::string& name, const std::vector<int64_t>& values,
                       std::vector<int64_t> shape) {
  if (shape.empty()) shape = {static_cast<int64_t>(values.size())};
  ensure_group(parent_of(name));
  write_dataset(id_, path_, name, H5T_NATIVE_INT64, H5T_STD_I64LE, values.data(), shape);
}

void File::write_uint8(const std::string& name, const uint8_t* data,
                       const std::vector<int64_t>& shape) {
  ensure_group(parent_of(name));
  write_dataset(id_, path_, name, H5T_NATIVE_UINT8, H5T_STD_U8LE, data, shape);
}

void File::write_strings(const std::string& name, const std::vector<std::string>& values) {
  ensure_group(parent_of(name));
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  std::vector<const char*> raw;
  for (const auto& s : values) raw.push_back(s.c_str());
  write_dataset(id_, path_, name, type, type, raw.data(), {static_cast<int64_t>(values.size())});
}

bool File::has_attr(const std::string& object, const std::string& attr) const {
  if (!exists(object)) return false;
  return H5Aexists_by_name(id_, object.c_str(), attr.c_str(), H5P_DEFAULT) > 0;
}

namespace {
hid_t open_attr(hid_t file, const std::string& path, const std::string& object,
                const std::string& attr) {
  const hid_t a = H5Aopen_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT, H5P_DEFAULT);
  MF_CHECK(a >= 0, path, ": missing attribute '", attr, "' on '", object, "'");
  return a;
}
}  // namespace

std::vector<int64_t> File::read_attr_ints(const std::string& object,
                                          const std::string& attr) const {
  Handle a(open_attr(id_, path_, object, attr));
  Handle space(H5Aget_space(a));
  int64_t n = H5Sget_simple_extent_npoints(space);
  std::vector<int64_t> v(n);
  MF_CHECK(H5Aread(a, H5T_NATIVE_INT64, v.data()) >= 0, path_, ": attribute '", attr, "' on '",
           object, "' is not an integer");
  return v;
}

int64_t File::read_attr_int(const std::string& object, const std::string& attr) const {
  const auto v = read_attr_ints(object, attr);
  MF_CHECK(v.size() == 1, path_, ": attribute '", attr, "' on '", object, "' has ", v.size(),
           " values, expected 1");
  return v[0];
}

double File::read_attr_double(const std::string& object, const std::string& attr) const {
  Handle a(open_attr(id_, path_, object, attr));
  double v = 0;
  MF_CHECK(H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0, path_, ": attribute '", attr, "' on '", object,
           "' is not a number");
  return v;
}

std::string File::read_attr_string(const std::string& object, const std::string& attr) const {
  Handle a(open_attr(id_, path_, object, attr));
  Handle type(H5Aget_type(a));
  MF_CHECK(H5Tget_class(type) == H5T_STRING, path_, ": attribute '", attr, "' on '", object,
           "' is not a string");
  if (H5Tis_variable_str(type) > 0) {
    char* raw = nullptr;
    Handle mem(H5Tcopy(H5T_C_S1));
    H5Tset_size(mem, H5T_VARIABLE);
    H5Tset_cset(mem, H5Tget_cset(type));  // h5py writes UTF-8; HDF5 will not convert char sets
    MF_CHECK(H5Aread(a, mem, &raw) >= 0, path_, ": cannot read attribute '", attr, "'");
    std::string s = raw ? raw : "";
    H5free_memory(raw);
    return s;
  }
  std::string s(H5Tget_size(type), '\0');
  MF_CHECK(H5Aread(a, type, s.data()) >= 0, path_, ": cannot read attribute '", attr, "'");
  s.erase(std::find(s.begin(), s.end(), '\0'), s.end());
  return s;
}

namespace {
void write_attr_raw(hid_t file, const std::string& path, const std::string& object,
                    const std::string& attr, hid_t type, hid_t space, const void* data) {
  if (H5Aexists_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT) > 0)
    H5Adelete_by_name(file, object.c_str(), attr.c_str(), H5P_DEFAULT);
  Handle a(H5Acreate_by_name(file, object.c_str(), attr.c_str(), type, space, H5P_DEFAULT,
                             H5P_DEFAULT, H5P_DEFAULT));
  MF_CHECK(a >= 0, path, ": cannot create attribute '", attr, "' on '", object, "'");
  MF_CHECK(H5Awrite(a, type, data) >= 0, path, ": cannot write attribute '", attr, "'");
}
}  // namespace

void File::write_attr(const std::string& object, const std::string& attr, int64_t value) {
  write_attr(object, attr, std::vector<int64_t>{value});
}

void File::write_attr(const std::string& object, const std::string& attr,
                      const std::vector<int64_t>& values) {
  ensure_group(object);
  hsize_t n = values.size();
  Handle space(n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, nullptr));
  write_attr_raw(id_, path_, object, attr, H5T_NATIVE_INT64, space, values.data());
}

void File::write_attr(const std::string& object, const std::string& attr, double value) {
  ensure_group(object);
  Handle space(H5Screate(H5S_SCALAR));
  write_attr_raw(id_, path_, object, attr, H5T_NATIVE_DOUBLE, space, &value);
}

void File::write_attr(const std::string& object, const std::string& attr,
                      const std::string& value) {
  ensure_group(object);
  Handle type(H5Tcopy(H5T_C_S1));
  H5Tset_size(type, H5T_VARIABLE);
  H5Tset_cset(type, H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR));
  const char* raw = value.c_str();
  write_attr_raw(id_, path_, object, attr, type, space, &raw);
}

void File::close() {
  if (id_ < 0) return;
  errno = 0;
  const herr_t rc = H5Fclose(id_);
  id_ = -1;
  MF_CHECK(rc >= 0, "cannot write ", path_, ": ",
           errno ? std::strerror(errno) : "HDF5 could not close the file (disk full?)");
}

void commit_atomic(const std::string& tmp_path, const std::string& path) {
  // fsync the data before the rename so the new name never points at unwritten blocks.
  const int fd = ::open(tmp_path.c_str(), O_RDONLY);
  MF_CHECK(fd >= 0, "cannot reopen '", tmp_path, "' to sync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  MF_CHECK(rc == 0, "cannot sync '", tmp_path, "' to disk");
  std::error_code ec;
  std::filesystem::rename(tmp_path, path, ec);
  MF_CHECK(!ec, "cannot rename '", tmp_path, "' to '", path, "': ", ec.message());
  sync_folder(std::filesystem::path(path).parent_path().string());  // the rename itself
}

}  // namespace mf::h5
