#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <sstream>
#include <string>
#include <unordered_map>

#include "dist/communicator.h"
#include "layers/module.h"
#include "losses/partial_fc.h"
#include "optim/optimizer.h"
#include "util/error.h"

namespace mf {

GradientSync::GradientSync(dist::Communicator& comm, std::vector<Var> params, int64_t bucket_bytes,
                           bool overlap)
    : comm_(comm), params_(std::move(params)), overlap_(overlap) {
  bucket_of_.resize(params_.size());
  int64_t bytes = bucket_bytes;  // full: open a new bucket
  for (size_t k = params_.size(); k-- > 0;) {
    const int64_t size = params_[k].value().numel() * int64_t(sizeof(float));
    if (bytes + size > bucket_bytes && !(buckets_.size() && buckets_.back().params.empty())) {
      buckets_.emplace_back();
      bytes = 0;
    }
    buckets_.back().params.push_back(k);
    bucket_of_[k] = buckets_.size() - 1;
    bytes += size;
  }
  for (Bucket& b : buckets_) {
    int64_t n = 0;
    for (size_t k : b.params) n += params_[k].value().numel();
    b.buffer.resize(n);
  }
  for (size_t k = 0; k < params_.size(); ++k) index_of_[params_[k].state()->tape.get()] = k;
}

void GradientSync::start(Bucket& b) {
  float* out = b.buffer.data();
  for (size_t k : b.params) {
    const Var& p = params_[k];
    const int64_t n = p.value().numel();
    if (p.grad().defined())
      std::memcpy(out, p.grad().data(), n * sizeof(float));
    else
      std::fill(out, out + n, 0.0f);
    out += n;
  }
  b.handle = comm_.start_sum(b.buffer.data(), int64_t(b.buffer.size()));
  b.started = true;
}

LeafReadyFn GradientSync::hook() {
  if (!overlap_) return {};
  // Leaves are keyed by their GradState, which lives as long as the parameter.
  return [this](const GradState* leaf) {
    const auto it = index_of_.find(leaf);
    if (it == index_of_.end()) return;
    Bucket& b = buckets_[bucket_of_[it->second]];
    if (++b.ready == b.params.size() && !b.started) start(b);
    for (const Bucket& other : buckets_)  // drive MPI's progress while backward computes
      if (other.started) comm_.test(other.handle);
  };
}

void GradientSync::finish() {
  for (Bucket& b : buckets_)
    if (!b.started) start(b);
  const auto t0 = std::chrono::steady_clock::now();
  for (Bucket& b : buckets_) comm_.wait(b.handle, "the gradient allreduce");
  exposed_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (Bucket& b : buckets_) {
    const float* in = b.buffer.data();
    for (size_t k : b.params) {
      Var& p = params_[k];
      const int64_t n = p.value().numel();
      if (!p.grad().defined()) p.grad() = Tensor::zeros(p.value().shape());
      std::memcpy(p.grad().data(), in, n * sizeof(float));
      in += n;
    }
    b.ready = 0;
    b.started = false;
    b.handle = -1;
  }
}

double GradientSync::take_exposed_seconds() {
  const double s = exposed_;
  exposed_ = 0;
  return s;
}

namespace {

// Root's tensors (name → tensor) to every process: the names and shapes, then the values.
std::map<std::string, Tensor> broadcast_map(dist::Communicator& comm,
                                            const std::map<std::string, Tensor>& root_map) {
  std::string header;  // "name\trank d0 d1 …\n" per tensor
  if (comm.is_root())
    for (const auto& [name, t] : root_map) {
      std::ostringstream line;
      line << name << '\t' << t.shape().rank();
      for (int64_t d : t.shape().to_vector()) line << ' ' << d;
      line << '\n';
      header += line.str();
    }
  int64_t size = static_cast<int64_t>(header.size());
  comm.broadcast(&size, sizeof size, 0, "the start of training (state from rank 0)");
  header.resize(size);
  comm.broadcast(header.data(), size, 0, "the start of training (state from rank 0)");
  std::map<std::string, Tensor> out;
  size_t pos = 0;
  while (pos < header.size()) {
    const size_t tab = header.find('\t', pos), end = header.find('\n', pos);
    const std::string name = header.substr(pos, tab - pos);
    std::vector<int64_t> dims;
    std::istringstream text(header.substr(tab + 1, end - tab - 1));
    int rank = 0;
    text >> rank;
    for (int64_t d = 0, i = 0; i < rank && text >> d; ++i) dims.push_back(d);
    Tensor t = comm.is_root() ? root_map.at(name) : Tensor::empty(Shape(dims));
    comm.broadcast(t.data(), t.numel() * int64_t(sizeof(float)), 0,
                   "the start of training (state from rank 0)");
    out.emplace(name, t);
    pos = end + 1;
  }
  return out;
}

}  // namespace

void broadcast_from_root(dist::Communicator& comm, const std::vector<Module*>& modules,
                         Optimizer& optimizer, const Var* split) {
  if (comm.size() == 1) return;
  for (Module* m : modules) {
    std::map<std::string, Tensor> state;
    for (auto& [name, v] : m->named_parameters())
      if (!split || v.state() != split->state()) state.emplace("p/" + name, v.value());
    for (auto& [name, t] : m->named_buffers()) state.emplace("b/" + name, t);
    const auto got = broadcast_map(comm, state);
    if (comm.is_root()) continue;
    for (auto& [name, t] : state) {  // in place: handles to parameters and buffers stay valid
      const Tensor& src = got.at(name);
      MF_CHECK(src.shape() == t.shape(), "internal: rank ", comm.rank(), ": ", name, " is ",
               t.shape(), " here and ", src.shape(), " on rank 0");
      std::memcpy(t.data(), src.data(), t.numel() * sizeof(float));
    }
  }
  std::map<std::string, Tensor> root_state;
  if (comm.is_root())
    for (auto& [key, t] : optimizer.state())
      if (!split || !SplitClassWeights::is_split("/optimizer/" + key)) root_state.emplace(key, t);
  auto opt = broadcast_map(comm, root_state);
  if (comm.is_root()) return;
  if (split)  // keep this process's own rows' state
    for (auto& [key, t] : optimizer.state())
      if (SplitClassWeights::is_split("/optimizer/" + key)) opt[key] = t;
  optimizer.load_state(opt);
}

namespace {
// The optimizer state kinds a split parameter may have (optim/optimizer.h: SGD, AdamW).
const char* const kStateKinds[] = {"momentum", "exp_avg", "exp_avg_sq"};
const char* const kSplitParam = "head/weight";
constexpr int64_t kChunkValues = int64_t(4) << 20;
}  // namespace

SplitClassWeights::SplitClassWeights(dist::Communicator& comm, PartialFcHead& head,
                                     Optimizer& optimizer)
    : comm_(comm), optimizer_(optimizer) {
  for (const auto& [name, v] : head.named_parameters())
    if (name == "weight") weight_ = v;
  MF_CHECK(weight_.defined(), "internal: Partial FC head without 'weight'");
  const int64_t G = head.rows_per_class();
  rows_ = weight_.dim(0);
  D_ = weight_.dim(1);
  first_row_ = head.shard().first * G;
  total_rows_ = head.shard().total * G;
}

bool SplitClassWeights::is_split(const std::string& path) {
  if (path == "/head/weight") return true;
  for (const char* kind : kStateKinds)
    if (path == std::string("/optimizer/") + kind + "/" + kSplitParam) return true;
  return false;
}

void SplitClassWeights::exchange(Tensor& whole, Tensor& rows, bool to_root, const char* what) {
  const int64_t total = total_rows_ * D_, mine_begin = first_row_ * D_,
                mine_end = mine_begin + rows_ * D_;
  std::vector<float> chunk;
  for (int64_t begin = 0; begin < total; begin += kChunkValues) {
    const int64_t end = std::min(total, begin + kChunkValues);
    chunk.assign(size_t(end - begin), 0.0f);
    const int64_t lo = std::max(begin, mine_begin), hi = std::min(end, mine_end);
    if (to_root) {
      if (lo < hi)
        std::memcpy(chunk.data() + (lo - begin), rows.data() + (lo - mine_begin),
                    size_t(hi - lo) * sizeof(float));
      comm_.sum(chunk.data(), end - begin, what);
      if (comm_.is_root())
        std::memcpy(whole.data() + begin, chunk.data(), size_t(end - begin) * sizeof(float));
    } else {
      if (comm_.is_root())
        std::memcpy(chunk.data(), whole.data() + begin, size_t(end - begin) * sizeof(float));
      comm_.broadcast(chunk.data(), (end - begin) * int64_t(sizeof(float)), 0, what);
      if (lo < hi)
        std::memcpy(rows.data() + (lo - mine_begin), chunk.data() + (lo - begin),
                    size_t(hi - lo) * sizeof(float));
    }
  }
}

std::map<std::string, Tensor> SplitClassWeights::gather() {
  std::map<std::string, Tensor> whole;
  auto take = [&](const std::string& path, Tensor rows) {
    Tensor all = comm_.is_root() ? Tensor::empty({total_rows_, D_}) : Tensor();
    exchange(all, rows, true, "the checkpoint's gather of Partial FC's class weights");
    if (comm_.is_root()) whole.emplace(path, all);
  };
  take("/head/weight", weight_.value());
  const std::map<std::string, Tensor> state = optimizer_.state();
  for (const char* kind : kStateKinds) {
    const std::string key = std::string(kind) + "/" + kSplitParam;
    double present = state.count(key) ? 1.0 : 0.0;  // a process whose rows were never updated
    comm_.max(&present, 1, "the checkpoint's gather of Partial FC's optimizer state");
    if (present > 0)  // state that was never created is zero: the same first update
      take("/optimizer/" + key, state.count(key) ? state.at(key) : Tensor::zeros({rows_, D_}));
  }
  return whole;
}

void SplitClassWeights::take_rows(const WholeTensors& whole) {
  const auto it = whole.tensors.find("/head/weight");
  MF_CHECK(it != whole.tensors.end() && it->second.shape() == Shape({total_rows_, D_}),
           "model.init: the checkpoint's head weights do not match the run's (", total_rows_, ", ",
           D_, ")");
  std::memcpy(weight_.value().data(), it->second.data() + first_row_ * D_,
              size_t(rows_ * D_) * sizeof(float));
}

void SplitClassWeights::scatter(const std::map<std::string, Tensor>& whole) {
  auto give = [&](const std::string& path, Tensor& rows) {
    Tensor all;
    if (comm_.is_root()) {
      all = whole.at(path);
      MF_CHECK(all.shape() == Shape({total_rows_, D_}), "the checkpoint's ", path, " is ",
               all.shape(), ", the run needs (", total_rows_, ", ", D_, ")");
    }
    exchange(all, rows, false, "the resume's split of Partial FC's class weights");
  };
  Tensor w = weight_.value();
  give("/head/weight", w);
  std::map<std::string, Tensor> state = optimizer_.state();
  for (const char* kind : kStateKinds) {
    const std::string key = std::string(kind) + "/" + kSplitParam;
    double present = comm_.is_root() && whole.count("/optimizer/" + key) ? 1.0 : 0.0;
    comm_.broadcast(&present, sizeof present, 0, "the resume's split of Partial FC's state");
    if (present == 0) continue;
    Tensor rows = Tensor::zeros({rows_, D_});
    give("/optimizer/" + key, rows);
    state[key] = rows;
  }
  optimizer_.load_state(state);
}

}  // namespace mf
