// Whole-file reads with messages that say what the file was meant to be.
#pragma once

#include <string>

namespace mf {

// The bytes of `path`; `what` names it in errors ("cannot open image x.jpg", "error reading
// validation pack lfw.bin"). Existence and file-type checks with their own wording stay with the
// callers.
std::string read_file(const std::string& path, const std::string& what);

}  // namespace mf
