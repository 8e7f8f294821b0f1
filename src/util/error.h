// Errors that name what went wrong and where.
//
// MF_CHECK stays on in release builds: it guards shapes, configuration, files and user input, where
// a clear message is worth far more than the branch it costs. It throws mf::Error carrying the
// source location and a message assembled from its arguments:
//   MF_CHECK(a.dim(1) == b.dim(0), "matmul: inner sizes differ: ", a.shape(), " vs ", b.shape());
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace mf {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <class... Parts>
std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
[[noreturn]] void throw_error(const char* file, int line, const std::string& message);
}  // namespace detail

}  // namespace mf

#define MF_CHECK(cond, ...)                                                                        \
  do {                                                                                             \
    if (!(cond)) ::mf::detail::throw_error(__FILE__, __LINE__, ::mf::detail::concat(__VA_ARGS__)); \
  } while (0)

#define MF_FAIL(...) \
  ::mf::detail::throw_error(__FILE__, __LINE__, ::mf::detail::concat(__VA_ARGS__))
