// A full disk for one scope, simulated with RLIMIT_FSIZE: writes past `bytes` fail with EFBIG as
// they fail with ENOSPC on a full disk (works without root or a tmpfs). SIGXFSZ is ignored so the
// write fails instead of killing the test.
#pragma once

#include <sys/resource.h>

#include <csignal>

namespace mf::test {

class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    ::getrlimit(RLIMIT_FSIZE, &old_);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = old_;
    limit.rlim_cur = bytes;
    ::setrlimit(RLIMIT_FSIZE, &limit);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &old_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit old_{};
  void (*old_handler_)(int);
};

}  // namespace mf::test
