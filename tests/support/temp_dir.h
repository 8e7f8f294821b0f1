// A temporary folder per test, unique to the process and the test (so ctest -j runs cannot race
// and nothing stale from an earlier run is reused), removed when the test ends; and the message of
// an expected mf::Error.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "util/error.h"

namespace mf::test {

class TempDir {
 public:
  TempDir();   // <tmp>/mf_test_<pid>_<suite>_<test>, emptied
  ~TempDir();  // removes the folder, or keeps it for a look when the test failed
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& root() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }
  std::string path(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  // Writes `bytes` to the file `name` in the folder; returns its path.
  std::string write(const std::string& name, const std::string& bytes) const;

 private:
  std::filesystem::path path_;
};

// The message of the mf::Error that `f` throws; a test failure when it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected mf::Error";
  return "";
}

}  // namespace mf::test
