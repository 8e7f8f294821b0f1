// Running shell commands from tests (the `marginface` binary, scripts/, Debian's python3).
#pragma once

#include <string>

namespace mf::test {

// 'text' for sh, embedded single quotes escaped.
std::string shell_quote(const std::string& text);

struct CommandResult {
  int status = -1;     // exit status; −1 when the command could not run or was killed
  std::string output;  // stdout and stderr, interleaved
};

// Runs `command` through sh with stderr merged into stdout.
CommandResult run_command(const std::string& command);

}  // namespace mf::test
