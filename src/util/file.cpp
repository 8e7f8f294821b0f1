#include "util/file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace mf {

namespace {

// Writes all of `bytes` to `fd`, retrying short writes; false with errno set on failure.
bool write_all(int fd, const std::string& bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// The last step of an atomic write: renames the synced temporary file over `path`, then syncs the
// folder so the rename itself survives a power loss.
void commit(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    std::remove(tmp.c_str());
    MF_FAIL("cannot write ", path, ": renaming ", tmp, " failed: ", std::strerror(error));
  }
  sync_folder(std::filesystem::path(path).parent_path().string());
}

}  // namespace

std::string read_file(const std::string& path, const std::string& what) {
  std::ifstream in(path, std::ios::binary);
  MF_CHECK(in.good(), "cannot open ", what, " ", path);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  MF_CHECK(!in.bad(), "error reading ", what, " ", path);
  return bytes.str();
}

void sync_folder(const std::string& dir) {
  const int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

void write_file_atomically(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  MF_CHECK(fd >= 0, "cannot write ", path, ": creating ", tmp, " failed: ", std::strerror(errno));
  const bool ok = write_all(fd, bytes) && ::fsync(fd) == 0;
  const int error = errno;
  ::close(fd);
  if (!ok) {
    std::remove(tmp.c_str());
    MF_FAIL("cannot write ", path, ": ", std::strerror(error), " (", path, " is unchanged)");
  }
  commit(tmp, path);
}

void copy_file_atomically(const std::string& from, const std::string& to) {
  const std::string tmp = to + ".tmp";
  std::error_code ec;
  std::filesystem::copy_file(from, tmp, std::filesystem::copy_options::overwrite_existing, ec);
  int fd = ec ? -1 : ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  const bool synced = fd >= 0 && ::fsync(fd) == 0;
  if (fd >= 0) ::close(fd);
  if (ec || !synced) {
    const std::string reason = ec ? ec.message() : std::strerror(errno);
    std::remove(tmp.c_str());
    MF_FAIL("cannot copy ", from, " to ", to, ": ", reason, " (", to, " is unchanged)");
  }
  commit(tmp, to);
}

void append_line(const std::string& path, const std::string& line) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  MF_CHECK(fd >= 0, "cannot write ", path, ": ", std::strerror(errno));
  const bool ok = write_all(fd, line + '\n');
  const int error = errno;
  ::close(fd);
  MF_CHECK(ok, "cannot write ", path, ": ", std::strerror(error));
}

}  // namespace mf
