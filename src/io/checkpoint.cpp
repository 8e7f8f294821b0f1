#include "io/checkpoint.h"

#include <filesystem>
#include <sstream>

#include "h5/file.h"
#include "io/module_io.h"
#include "layers/backbones/registry.h"
#include "optim/optimizer.h"
#include "tensor/rng.h"
#include "util/error.h"
#include "util/params.h"

namespace mf {

namespace {

void write_meta(h5::File& f, const CheckpointMeta& m) {
  f.write_attr("/meta", "format_version", CheckpointMeta::kFormatVersion);
  f.write_attr("/meta", "backbone", m.backbone);
  f.write_attr("/meta", "embedding_size", m.embedding_size);
  f.write_attr("/meta", "width", m.width);
  f.write_attr("/meta", "input_size", std::vector<int64_t>{m.input_height, m.input_width});
  f.write_attr("/meta", "step", m.step);
  f.write_attr("/meta", "epoch", m.epoch);
  f.write_attr("/meta", "head", m.head);
  f.write_attr("/meta", "config", m.config);
  if (m.verification_threshold)
    f.write_attr("/meta", "verification_threshold", *m.verification_threshold);
  if (!m.verification_threshold_source.empty())
    f.write_attr("/meta", "verification_threshold_source", m.verification_threshold_source);
  if (m.best_score) f.write_attr("/meta", "best_score", *m.best_score);
  if (!m.data_signature.empty()) f.write_attr("/meta", "data_signature", m.data_signature);
}

CheckpointMeta read_meta(const h5::File& f) {
  MF_CHECK(f.exists("/meta"), f.path(), ": not a marginface checkpoint (no /meta group)");
  CheckpointMeta m;
  const int64_t version =
      f.has_attr("/meta", "format_version") ? f.read_attr_int("/meta", "format_version") : 1;
  MF_CHECK(version <= CheckpointMeta::kFormatVersion, f.path(), ": checkpoint format ", version,
           " is newer than this build reads (", CheckpointMeta::kFormatVersion, ")");
  m.backbone = f.read_attr_string("/meta", "backbone");
  m.embedding_size = f.read_attr_int("/meta", "embedding_size");
  if (f.has_attr("/meta", "width")) m.width = f.read_attr_double("/meta", "width");
  if (f.has_attr("/meta", "input_size")) {
    const auto size = f.read_attr_ints("/meta", "input_size");
    MF_CHECK(size.size() == 2, f.path(), ": /meta input_size must hold two integers");
    m.input_height = size[0];
    m.input_width = size[1];
  }
  if (f.has_attr("/meta", "step")) m.step = f.read_attr_int("/meta", "step");
  if (f.has_attr("/meta", "epoch")) m.epoch = f.read_attr_int("/meta", "epoch");
  if (f.has_attr("/meta", "head")) m.head = f.read_attr_string("/meta", "head");
  if (f.has_attr("/meta", "config")) m.config = f.read_attr_string("/meta", "config");
  if (f.has_attr("/meta", "verification_threshold"))
    m.verification_threshold = f.read_attr_double("/meta", "verification_threshold");
  if (f.has_attr("/meta", "verification_threshold_source"))
    m.verification_threshold_source = f.read_attr_string("/meta", "verification_threshold_source");
  if (f.has_attr("/meta", "best_score")) m.best_score = f.read_attr_double("/meta", "best_score");
  // Values no writer produces (a hand-edited or damaged file) stop here, naming the attribute,
  // instead of as a huge allocation or a negative loop count later.
  auto check = [&](bool ok, const char* attr, auto value) {
    MF_CHECK(ok, f.path(), ": /meta ", attr, " = ", value, " is out of range");
  };
  check(m.embedding_size > 0 && m.embedding_size <= (1 << 20), "embedding_size", m.embedding_size);
  check(m.width > 0 && m.width <= 64, "width", m.width);
  check(m.input_height > 0 && m.input_height <= 4096, "input_size", m.input_height);
  check(m.input_width > 0 && m.input_width <= 4096, "input_size", m.input_width);
  check(m.step >= 0, "step", m.step);
  check(m.epoch >= 0, "epoch", m.epoch);
  if (f.has_attr("/meta", "data_signature"))
    m.data_signature = f.read_attr_string("/meta", "data_signature");
  return m;
}

}  // namespace

void save_checkpoint(const std::string& path, const CheckpointContents& c) {
  MF_CHECK(c.model != nullptr, "save_checkpoint: no model");
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  h5::write_atomically(path, [&](h5::File& f) {
    f.set_checksums(true);  // Fletcher-32 on every tensor, verified by HDF5 on load
    save_module(f, "/model", *c.model);
    if (c.head) save_module(f, "/head", *c.head, c.whole);
    if (c.ema) save_module(f, "/ema", *c.ema);
    if (c.optimizer)
      for (const auto& [name, t] : c.optimizer->state())
        if (!c.whole || !c.whole->count("/optimizer/" + name))
          f.write_tensor("/optimizer/" + name, t);
    if (c.whole)  // the optimizer state of split tensors (the head's were written above)
      for (const auto& [tensor_path, t] : *c.whole)
        if (tensor_path.rfind("/optimizer/", 0) == 0) f.write_tensor(tensor_path, t);
    if (!c.identities.empty()) f.write_strings("/identities", c.identities);
    write_meta(f, c.meta);
  });
}

CheckpointMeta read_checkpoint_meta(const std::string& path) {
  h5::File f(path, h5::File::Mode::kRead);
  return read_meta(f);
}

void load_checkpoint(const std::string& path, Module& model, Module* head, Optimizer* optimizer,
                     std::vector<std::string>* identities, WholeTensors* whole) {
  h5::File f(path, h5::File::Mode::kRead);
  read_meta(f);
  load_module(f, "/model", model);
  // A head without parameters or buffers (triplet) stores nothing under /head.
  if (head &&
      (f.exists("/head") || !head->named_parameters().empty() || !head->named_buffers().empty())) {
    MF_CHECK(f.exists("/head"), path, ": the checkpoint holds no head");
    load_module(f, "/head", *head, {}, whole);
  }
  if (optimizer) {
    MF_CHECK(f.exists("/optimizer"), path,
             ": the checkpoint holds no optimizer state to resume from");
    std::map<std::string, Tensor> state;
    // Names are "<kind>/<param path>" where the parameter path itself contains '/': walk the tree.
    std::vector<std::string> pending{"/optimizer"};
    while (!pending.empty()) {
      const std::string group = pending.back();
      pending.pop_back();
      for (const auto& name : f.list(group)) {
        const std::string full = group + "/" + name;
        if (f.is_group(full))
          pending.push_back(full);
        else if (whole && whole->wanted(full))
          whole->tensors[full] = f.read_tensor(full);
        else
          state[full.substr(std::string("/optimizer/").size())] = f.read_tensor(full);
      }
    }
    optimizer->load_state(state);
  }
  if (identities)
    *identities =
        f.exists("/identities") ? f.read_strings("/identities") : std::vector<std::string>{};
}

bool load_weight_average(const std::string& path, Module& average) {
  h5::File f(path, h5::File::Mode::kRead);
  if (!f.exists("/ema")) return false;
  load_module(f, "/ema", average);
  return true;
}

void store_verification_threshold(const std::string& path, double threshold,
                                  const std::string& source) {
  // Copy, update, rename: the original stays intact if anything fails.
  const std::string tmp = path + ".tmp";
  std::filesystem::copy_file(path, tmp, std::filesystem::copy_options::overwrite_existing);
  {
    h5::File f(tmp, h5::File::Mode::kReadWrite);
    read_meta(f);
    f.write_attr("/meta", "verification_threshold", threshold);
    f.write_attr("/meta", "verification_threshold_source", source);
    f.close();  // checked: a full disk fails here and the original stays as it was
  }
  h5::commit_atomic(tmp, path);
}

std::unique_ptr<Backbone> load_backbone(const std::string& checkpoint) {
  const CheckpointMeta meta = read_checkpoint_meta(checkpoint);
  Params p("checkpoint");
  std::ostringstream width;
  width.precision(17);  // std::to_string keeps 6 decimals: a width of 1/3 would build other sizes
  width << meta.width;
  p.set("width", width.str(), checkpoint + " /meta");
  p.set("embedding_size", std::to_string(meta.embedding_size), checkpoint + " /meta");
  Rng rng(0);
  auto backbone = builtin_backbones().create(meta.backbone, p, rng);
  load_checkpoint(checkpoint, *backbone);
  load_weight_average(checkpoint, *backbone);  // the average replaces the last weights if kept
  return backbone;
}

}  // namespace mf
