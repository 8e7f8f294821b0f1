// One registry template maps YAML names to builders of heads, backbones, optimizers and
// schedules. Registration is an explicit list (register_builtin_heads() and friends), never
// static initialisers, so nothing depends on link order.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "util/error.h"
#include "util/params.h"

namespace mf {

template <class Base, class... Args>
class Registry {
 public:
  using Builder = std::function<std::unique_ptr<Base>(const Params&, Args...)>;

  explicit Registry(std::string kind) : kind_(std::move(kind)) {}

  void add(const std::string& name, Builder build, std::string summary = "") {
    MF_CHECK(!entries_.count(name), kind_, " '", name, "' registered twice");
    entries_[name] = Entry{std::move(build), std::move(summary)};
  }
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    for (const auto& [name, e] : entries_) out.push_back(name);
    return out;
  }
  const std::string& summary(const std::string& name) const { return entries_.at(name).summary; }

  // Builds `name` from `params`; an unknown name lists the known ones; keys the builder did not
  // read are reported as unknown.
  std::unique_ptr<Base> create(const std::string& name, const Params& params, Args... args) const {
    auto it = entries_.find(name);
    if (it == entries_.end()) {
      std::string known;
      for (const auto& n : names()) known += (known.empty() ? "" : ", ") + n;
      MF_FAIL("unknown ", kind_, " '", name, "' (known: ", known, ")");
    }
    auto built = it->second.build(params, args...);
    params.finish(kind_ + " '" + name + "'");
    return built;
  }

 private:
  struct Entry {
    Builder build;
    std::string summary;
  };
  std::string kind_;
  std::map<std::string, Entry> entries_;
};

}  // namespace mf
