// Whole-file reads and writes with messages that say what the file was meant to be.
#pragma once

#include <string>

namespace mf {

// The bytes of `path`; `what` names it in errors ("cannot open image x.jpg", "error reading
// validation pack lfw.bin"). Existence and file-type checks with their own wording stay with the
// callers.
std::string read_file(const std::string& path, const std::string& what);

// Writes `bytes` to `path` through `path.tmp`: written, fsync'ed, renamed over `path`, and the
// folder fsync'ed, so readers (and a machine that loses power) see the old file or the new one,
// never half of one. Errors name the file and the system's reason ("No space left on device");
// the temporary file is removed and `path` is untouched.
void write_file_atomically(const std::string& path, const std::string& bytes);

// Copies `from` to `to` the same way: to `to.tmp`, fsync'ed, renamed, folder fsync'ed.
void copy_file_atomically(const std::string& from, const std::string& to);

// Appends `line` and a newline to `path` (created when missing) with one write; an error (a full
// disk) throws naming the file.
void append_line(const std::string& path, const std::string& line);

// fsync of a folder, so a rename inside it survives a power loss. Errors are ignored where the
// file system cannot sync folders.
void sync_folder(const std::string& dir);

}  // namespace mf
