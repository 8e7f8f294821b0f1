#include "io/module_io.h"

#include <cmath>
#include <set>
#include <utility>
#include <vector>

#include "util/error.h"

namespace mf {

namespace {

std::string join(const std::string& group, const std::string& name) {
  if (group.empty() || group == "/") return name;
  return group.back() == '/' ? group + name : group + "/" + name;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Every tensor of the module, parameters first, with its state_dict name.
std::vector<std::pair<std::string, Tensor>> state_tensors(const Module& module) {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [name, v] : module.named_parameters()) out.emplace_back(name, v.value());
  for (const auto& [name, t] : module.named_buffers()) out.emplace_back(name, t);
  return out;
}

}  // namespace

void load_module(const h5::File& file, const std::string& group, Module& module,
                 const LoadModuleOptions& options, WholeTensors* whole) {
  MF_CHECK(file.exists(group), file.path(), ": no group '", group, "' to load a model from");
  const auto targets = state_tensors(module);
  // Read and check everything before copying anything: a failed load leaves the module as it was.
  std::vector<Tensor> loaded;
  loaded.reserve(targets.size());
  std::set<std::string> known;
  for (const auto& [name, target] : targets) {
    const std::string path = join(group, name);
    MF_CHECK(file.exists(path), file.path(), ": missing tensor '", path, "' (expected shape ",
             target.shape(), ")");
    Tensor t = file.read_tensor(path);
    const bool split = whole && whole->wanted(path);
    MF_CHECK(
        split ? t.shape().rank() == 2 && t.dim(1) == target.dim(1) : t.shape() == target.shape(),
        file.path(), ": tensor '", path, "' has shape ", t.shape(), ", expected ",
        split ? "rows of " : "", target.shape());
    // A diverged run's weights would give NaN embeddings and scores downstream, silently.
    const int64_t nonfinite = nonfinite_count(t);
    MF_CHECK(nonfinite == 0, file.path(), ": tensor '", path, "' holds ", nonfinite, " NaN/Inf of ",
             t.numel(), " values (saved from a run that diverged?)");
    loaded.push_back(std::move(t));
    known.insert(name);
  }
  if (!options.allow_unexpected)
    for (const auto& name : file.list(group))
      MF_CHECK(known.count(name) || ends_with(name, "num_batches_tracked"), file.path(),
               ": unexpected tensor '", join(group, name), "' (not part of this model)");
  for (size_t i = 0; i < targets.size(); ++i) {
    const std::string path = join(group, targets[i].first);
    if (whole && whole->wanted(path)) {
      whole->tensors[path] = loaded[i];
      continue;
    }
    Tensor dst = targets[i].second;
    dst.copy_from(loaded[i]);
  }
}

void save_module(h5::File& file, const std::string& group, const Module& module,
                 const std::map<std::string, Tensor>* replace) {
  for (const auto& [name, t] : state_tensors(module)) {
    const std::string path = join(group, name);
    file.write_tensor(path, replace && replace->count(path) ? replace->at(path) : t);
  }
}

}  // namespace mf
