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
                         Optimizer& optimizer) {
  if (comm.size() == 1) return;
  for (Module* m : modules) {
    std::map<std::string, Tensor> state;
    for (auto& [name, v] : m->named_parameters()) state.emplace("p/" + name, v.value());
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
  const auto opt =
      broadcast_map(comm, comm.is_root() ? optimizer.state() : std::map<std::string, Tensor>());
  if (!comm.is_root()) optimizer.load_state(opt);
}

}  // namespace mf
