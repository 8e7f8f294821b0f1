#include "train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "util/error.h"
#include "util/file.h"

namespace mf {

namespace fs = std::filesystem;

json::Value StepRecord::to_json() const {
  json::Value v = json::Value::object();
  v.set("step", step)
      .set("epoch", epoch)
      .set("loss", loss)
      .set("acc", acc)
      .set("lr", lr)
      .set("images_per_s", images_per_s)
      .set("time", time);
  return v;
}

std::optional<StepRecord> StepRecord::from_json(const json::Value& v) {
  const json::Value* step = v.find("step");
  const json::Value* loss = v.find("loss");
  if (!step || !loss) return std::nullopt;  // an evaluation record
  auto number = [&](const char* key) {
    const json::Value* x = v.find(key);
    return x && x->is_number() ? x->as_double() : 0.0;
  };
  StepRecord r;
  r.step = step->as_int();
  r.epoch = static_cast<int64_t>(number("epoch"));
  r.loss = loss->as_double();  // null (a non-finite loss) reads as NaN
  r.acc = number("acc");
  r.lr = number("lr");
  r.images_per_s = number("images_per_s");
  r.time = number("time");
  return r;
}

namespace {

// Each complete record of a log.jsonl with its text; a torn line (a kill mid-append) is dropped.
std::vector<std::pair<json::Value, std::string>> read_records(const std::string& path) {
  std::vector<std::pair<json::Value, std::string>> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.back() != '}') continue;
    try {
      out.emplace_back(json::parse(line, path), line);
    } catch (const Error&) {
      continue;  // torn: the part of a line written before a kill
    }
  }
  return out;
}

}  // namespace

std::vector<StepRecord> read_step_records(const std::string& log_path) {
  std::vector<StepRecord> out;
  for (const auto& [record, line] : read_records(log_path))
    if (auto r = StepRecord::from_json(record)) out.push_back(*r);
  return out;
}

RunFolder::RunFolder(const std::string& dir) : dir_(dir) {
  MF_CHECK(!fs::exists(dir) || fs::is_directory(dir), "train.output_dir '", dir,
           "' is a file, not a folder");
  std::error_code ec;
  fs::create_directories(fs::path(dir) / "checkpoints", ec);
  MF_CHECK(!ec, "cannot create the run folder '", dir, "': ", ec.message());
  // The lock: flock is released by the kernel when the process dies, so a killed run never leaves
  // a stale lock behind; the PID written into the file is only for the message.
  const std::string lock = (fs::path(dir) / ".lock").string();
  lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  MF_CHECK(lock_fd_ >= 0, "cannot create ", lock, ": ", std::strerror(errno));
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char pid[32] = {0};
    const ssize_t n = ::pread(lock_fd_, pid, sizeof pid - 1, 0);
    ::close(lock_fd_);
    lock_fd_ = -1;
    std::string holder = n > 0 ? std::string(pid, static_cast<size_t>(n)) : "unknown";
    holder.erase(holder.find_last_not_of(" \n") + 1);
    MF_FAIL("'", dir, "' is in use by another training (PID ", holder,
            "); wait for it to end or choose another train.output_dir");
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(lock_fd_, 0) == 0) {
    [[maybe_unused]] const ssize_t n = ::pwrite(lock_fd_, pid.data(), pid.size(), 0);
  }
}

RunFolder::~RunFolder() {
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

std::string RunFolder::checkpoint_dir() const {
  return (fs::path(dir_) / "checkpoints").string();
}
std::string RunFolder::last_checkpoint() const {
  return (fs::path(dir_) / "checkpoints" / "last.h5").string();
}
std::string RunFolder::best_checkpoint() const {
  return (fs::path(dir_) / "checkpoints" / "best.h5").string();
}
std::string RunFolder::log_path() const {
  return (fs::path(dir_) / "log.jsonl").string();
}
bool RunFolder::has_run() const {
  return fs::exists(last_checkpoint());
}

namespace {
// The first line of every config.yaml a run writes: how write_config knows a file is its own.
constexpr const char* kConfigHeader =
    "# marginface train: the resolved configuration of this run\n";
}  // namespace

void RunFolder::write_config(const std::string& yaml) {
  const std::string path = (fs::path(dir_) / "config.yaml").string();
  if (fs::exists(path)) {
    // A config.yaml we did not write (`output_dir: .` beside the user's own config.yaml) is never
    // overwritten. Run folders from before the header count as ours by their log or checkpoint.
    const bool ours = read_file(path, "run config").rfind(kConfigHeader, 0) == 0 || has_run() ||
                      fs::exists(log_path());
    MF_CHECK(ours, path,
             " exists and was not written by marginface train; refusing to overwrite it (choose "
             "another train.output_dir)");
  }
  write_file_atomically(path, kConfigHeader + yaml);
}

double RunFolder::truncate_log_after(int64_t step) {
  double time = 0;
  std::string kept;
  for (const auto& [record, line] : read_records(log_path())) {
    const json::Value* s = record.find("step");
    if (!s || !s->is_number() || s->as_int() > step) continue;
    kept += line;
    kept += '\n';
    if (const auto r = StepRecord::from_json(record)) time = r->time;
  }
  // Atomic: on a full disk the old log stays whole and the error names it.
  if (fs::exists(log_path())) write_file_atomically(log_path(), kept);
  return time;
}

void RunFolder::append(const json::Value& record) {
  append_line(log_path(), record.dump(-1));
}

void RunFolder::save_step_checkpoint(int64_t step, int64_t keep,
                                     const std::function<void(const std::string&)>& save) {
  const fs::path dir = checkpoint_dir();
  const fs::path path = dir / ("step_" + std::to_string(step) + ".h5");
  save(path.string());
  copy_file_atomically(path.string(), last_checkpoint());
  std::vector<std::pair<int64_t, fs::path>> steps;
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("step_", 0) == 0 && e.path().extension() == ".h5")
      steps.emplace_back(std::atoll(n.c_str() + 5), e.path());
  }
  std::sort(steps.begin(), steps.end());
  for (size_t i = 0; i + static_cast<size_t>(keep) < steps.size(); ++i) fs::remove(steps[i].second);
}

void RunFolder::save_last(const std::function<void(const std::string&)>& save) {
  save(last_checkpoint());
}

void RunFolder::copy_last_to_best() {
  copy_file_atomically(last_checkpoint(), best_checkpoint());
}

}  // namespace mf
