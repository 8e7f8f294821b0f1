#include "io/config.h"

// GCC 12 reports a false -Wdangling-pointer inside yaml-cpp's inlined node iterators (its
// m_isValid check on a temporary); the code is correct, so silence that one warning here.
#pragma GCC diagnostic ignored "-Wdangling-pointer"
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "util/error.h"
#include "util/file.h"

namespace mf {

namespace {

std::vector<std::string> split_dots(const std::string& dotted) {
  std::vector<std::string> parts;
  std::stringstream in(dotted);
  std::string part;
  while (std::getline(in, part, '.')) parts.push_back(part);
  return parts;
}

std::string where(const std::string& source, const YAML::Mark& mark) {
  return source + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

std::string flow_text(const YAML::Node& node) {
  YAML::Emitter out;
  out << YAML::Flow << node;
  return out.c_str();
}

void flatten(const YAML::Node& node, const std::string& prefix, const std::string& source,
             const std::vector<std::string>& overridden, const std::string& dotted_base,
             Params& out) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const std::string name = prefix.empty() ? key : prefix + "." + key;
    const std::string dotted = dotted_base + "." + name;
    const YAML::Node value = it->second;  // a copy: it->second is a temporary
    if (value.IsMap()) {
      flatten(value, name, source, overridden, dotted_base, out);
      continue;
    }
    const bool from_set =
        std::find(overridden.begin(), overridden.end(), dotted) != overridden.end();
    const std::string origin =
        from_set ? std::string("--set ") + dotted : where(source, it->first.Mark());
    if (value.IsSequence())
      out.set(name, flow_text(value), origin);
    else if (value.IsNull())
      out.set(name, "", origin);
    else
      out.set(name, value.as<std::string>(), origin);
  }
}

// YAML allows nothing about duplicate keys to reach us but both entries; last-one-wins would hide
// a typo'd second `lr:`. Every map, at every depth, must name each key once.
void check_unique_keys(const YAML::Node& node, const std::string& source) {
  if (node.IsSequence()) {
    for (const auto& item : node) check_unique_keys(item, source);
    return;
  }
  if (!node.IsMap()) return;
  std::map<std::string, YAML::Mark> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    // A key that is itself a list or map ("[a]: 1", "? {a: 1}") has no name to look up.
    MF_CHECK(it->first.IsScalar(), where(source, it->first.Mark()),
             ": a key must be a plain name, not a list or map");
    const std::string key = it->first.Scalar();
    const auto [first, inserted] = seen.emplace(key, it->first.Mark());
    MF_CHECK(inserted, where(source, it->first.Mark()), ": duplicate key '", key,
             "' (first at line ", first->second.line + 1, "); each key may appear once");
    check_unique_keys(it->second, source);
  }
}

}  // namespace

Config Config::load(const std::string& path, const std::vector<std::string>& overrides) {
  MF_CHECK(!std::filesystem::is_directory(path), "config file '", path, "' is a folder");
  return parse(read_file(path, "config file"), path, overrides);
}

Config Config::parse(const std::string& text, const std::string& name,
                     const std::vector<std::string>& overrides) {
  Config c;
  c.source_ = name;
  try {
    c.root_ = std::make_shared<YAML::Node>(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    MF_FAIL(where(name, e.mark), ": invalid YAML: ", e.msg);
  }
  if (c.root_->IsNull()) *c.root_ = YAML::Node(YAML::NodeType::Map);
  check_unique_keys(*c.root_, name);
  MF_CHECK(c.root_->IsMap(), name,
           ": the config must be a map of sections (data, model, head, ...)");
  c.apply_overrides(overrides);
  check_unique_keys(*c.root_, name);  // values given by --set are YAML too
  return c;
}

void Config::apply_overrides(const std::vector<std::string>& overrides) {
  for (const std::string& o : overrides) {
    const auto eq = o.find('=');
    MF_CHECK(eq != std::string::npos && eq > 0, "--set '", o, "': expected key.path=value");
    const std::string dotted = o.substr(0, eq), value = o.substr(eq + 1);
    const auto parts = split_dots(dotted);
    // Walk with fresh handles: yaml-cpp's operator[] on a copy still writes into the tree.
    std::vector<YAML::Node> chain{*root_};
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      YAML::Node next = chain.back()[parts[i]];
      MF_CHECK(!next.IsDefined() || next.IsMap() || next.IsNull(), "--set ", dotted, ": '",
               parts[i], "' is not a section");
      chain.push_back(next);
    }
    YAML::Node parsed;
    try {
      parsed = YAML::Load(value);  // "[1, 2]" becomes a list, "0.1" stays a scalar
    } catch (const YAML::Exception&) {
      parsed = YAML::Node(value);
    }
    chain.back()[parts.back()] = parsed;
    overridden_.push_back(dotted);
  }
}

namespace {
// The node at a dotted path, or an undefined node. Walks through const nodes and rebinds with
// reset(): yaml-cpp's Node::operator= would assign into the tree instead of moving the handle.
YAML::Node find(const YAML::Node& root, const std::string& dotted) {
  YAML::Node node;
  node.reset(root);
  for (const auto& part : split_dots(dotted)) {
    const YAML::Node& current = node;
    if (!current.IsMap() || !current[part]) return YAML::Node(YAML::NodeType::Undefined);
    node.reset(current[part]);
  }
  return node;
}
}  // namespace

bool Config::has(const std::string& dotted) const {
  return find(*root_, dotted).IsDefined();
}

Params Config::section(const std::string& section) const {
  Params out(section);
  const YAML::Node node = find(*root_, section);
  if (!node.IsDefined() || node.IsNull()) return out;  // absent: every key takes its default
  MF_CHECK(node.IsMap(), where(source_, node.Mark()), ": '", section, "' must be a map of keys");
  flatten(node, "", source_, overridden_, section, out);
  return out;
}

void Config::check_sections(const std::vector<std::string>& known) const {
  for (auto it = root_->begin(); it != root_->end(); ++it) {
    const std::string key = it->first.as<std::string>();
    if (std::find(known.begin(), known.end(), key) != known.end()) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    // A section made by --set has no place in the file: name the override instead of "file:0:0".
    std::string origin = where(source_, it->first.Mark());
    for (const auto& dotted : overridden_)
      if (dotted == key || dotted.rfind(key + ".", 0) == 0) origin = "--set " + dotted;
    MF_FAIL(origin, ": unknown section '", key, "' (known: ", list, ")");
  }
}

std::vector<std::string> Config::keys(const std::string& section) const {
  std::vector<std::string> out;
  const YAML::Node node = find(*root_, section);
  if (!node.IsMap()) return out;
  for (auto it = node.begin(); it != node.end(); ++it) out.push_back(it->first.as<std::string>());
  return out;
}

void Config::replace_section(const std::string& target, const std::string& source) {
  const YAML::Node node = find(*root_, source);
  MF_CHECK(node.IsDefined(), source_, ": no '", source, "' to use as '", target, "'");
  MF_CHECK(node.IsMap() || node.IsNull(), where(source_, node.Mark()), ": '", source,
           "' must be a map of keys");
  (*root_)[target] = node.IsNull() ? YAML::Node(YAML::NodeType::Map) : node;
}

void Config::erase(const std::string& dotted) {
  const auto parts = split_dots(dotted);
  std::string parent;
  for (size_t i = 0; i + 1 < parts.size(); ++i) parent += (i ? "." : "") + parts[i];
  YAML::Node node = parent.empty() ? *root_ : find(*root_, parent);
  if (node.IsMap()) node.remove(parts.back());
}

std::string Config::to_yaml() const {
  YAML::Emitter out;
  out << *root_;
  return std::string(out.c_str()) + "\n";
}

}  // namespace mf
