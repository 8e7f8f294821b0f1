// YAML configuration: typed, validated, with errors that name the file, line and key.
//
// A Config is a YAML file plus `--set a.b=value` overrides. Consumers take one section at a time
// as Params (util/params.h): every scalar under it becomes a key ("lr", or "augment.flip" for
// nested maps), lists become their flow text ("[20000, 28000]"), and each key remembers where it
// was written ("configs/arcface_ir50.yaml:14:3" or "--set"). Consumers read keys with range
// checks; finish() then reports any key nobody read, with the known ones listed.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "util/params.h"

namespace YAML {
class Node;
}

namespace mf {

class Config {
 public:
  // Parses `path` (errors: "file:line:col: message") and applies overrides "a.b=value".
  static Config load(const std::string& path, const std::vector<std::string>& overrides = {});
  static Config parse(const std::string& text, const std::string& name = "<string>",
                      const std::vector<std::string>& overrides = {});

  bool has(const std::string& dotted) const;
  // Everything under `section` (dotted, e.g. "optim" or "data.augment") as flat Params.
  Params section(const std::string& section) const;
  // Top-level sections that are not in `known` → error naming the file and line.
  void check_sections(const std::vector<std::string>& known) const;
  std::string to_yaml() const;  // the resolved config (overrides applied)

  // The keys of the map at `section` in file order (empty if absent).
  std::vector<std::string> keys(const std::string& section) const;
  // Applies "a.b=value" overrides, as --set does; messages name them "--set a.b".
  void apply_overrides(const std::vector<std::string>& overrides);
  // Makes top-level `target` the map at dotted `source`, keeping the source's file positions for
  // messages (`marginface ablate` turns ablation.heads.NAME into the head section this way).
  void replace_section(const std::string& target, const std::string& source);
  // Removes a dotted key or section; nothing happens if it is absent.
  void erase(const std::string& dotted);
  const std::string& source() const { return source_; }

 private:
  std::shared_ptr<YAML::Node> root_;
  std::string source_;
  std::vector<std::string> overridden_;  // dotted keys set by --set
};

}  // namespace mf
