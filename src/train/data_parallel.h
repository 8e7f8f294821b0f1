// Data-parallel training over the processes of an MPI job (dist/communicator.h), as PyTorch's DDP:
// every process holds the whole model, trains on its slice of each global batch, and the
// parameter gradients are summed over the processes before the identical update on each.
//
// Each process's loss is its slice's mean scaled by (its images / the global batch's images), so
// the summed gradient is exactly the gradient of the global batch's mean loss: N processes
// compute what one process computes on the global batch, up to the order of float sums (and,
// without model.sync_bn, BatchNorm's per-process statistics).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

#include "autograd/var.h"
#include "io/module_io.h"

namespace mf {

class Module;
class Optimizer;
class PartialFcHead;
namespace dist {
class Communicator;
}

// Sums parameter gradients over the processes in buckets of about `bucket_bytes`, each started
// (MPI_Iallreduce) as soon as backward has finished every parameter in it, so the communication
// of the last layers overlaps the backward of the first ones (Li et al., "PyTorch Distributed",
// VLDB 2020, Sec. 3.2.3). Buckets follow the reverse of the parameters' order, the order in which
// backward finishes them.
class GradientSync {
 public:
  GradientSync(dist::Communicator& comm, std::vector<Var> params, int64_t bucket_bytes,
               bool overlap);

  // For the step's last backward: starts each bucket when its parameters are final.
  LeafReadyFn hook();
  // After that backward: starts the buckets not started yet (parameters backward never reached
  // count as zero gradients), waits for all and writes the sums into the gradients.
  void finish();

  // Seconds finish() spent blocked on the communication (what the overlap did not hide), summed
  // since the last call, then reset; the number of buckets.
  double take_exposed_seconds();
  size_t buckets() const { return buckets_.size(); }

 private:
  struct Bucket {
    std::vector<size_t> params;  // indices into params_
    std::vector<float> buffer;
    size_t ready = 0;
    int handle = -1;
    bool started = false;
  };
  void start(Bucket& b);

  dist::Communicator& comm_;
  std::vector<Var> params_;
  std::vector<size_t> bucket_of_;  // param index → bucket
  std::vector<Bucket> buckets_;
  std::unordered_map<const GradState*, size_t> index_of_;  // a parameter's leaf → its index
  bool overlap_;
  double exposed_ = 0;
};

// Makes every process's parameters, buffers and optimizer state those of the root (after the root
// resumed from a checkpoint or loaded model.init), so all processes start from the same bits.
// `split` (Partial FC's class weights, held by rows over the processes) and its optimizer state
// are left alone: SplitClassWeights moves them.
void broadcast_from_root(dist::Communicator& comm, const std::vector<Module*>& modules,
                         Optimizer& optimizer, const Var* split = nullptr);

// Partial FC over several processes (losses/partial_fc.h): the head's class weights "weight" and
// their optimizer state, held by rows (process p: its classes' rows), as the whole tensors a
// checkpoint holds, so a run saved by N processes resumes on any M. Both directions pass the
// rows through rank 0 in chunks of 4 Mi values (sums of zero-padded buffers to gather, broadcasts
// to split), so no other process ever holds more than its rows and a chunk; rank 0 holds the
// whole tensors while it writes or reads a checkpoint.
class SplitClassWeights {
 public:
  SplitClassWeights(dist::Communicator& comm, PartialFcHead& head, Optimizer& optimizer);
  // Collective. On rank 0: checkpoint path ("/head/weight", "/optimizer/momentum/head/weight",
  // …) → whole tensor; elsewhere empty.
  std::map<std::string, Tensor> gather();
  // Collective: rank 0's whole tensors (read from a checkpoint; ignored elsewhere) to every
  // process's rows.
  void scatter(const std::map<std::string, Tensor>& whole);
  // Not collective: this process's rows of the class weights from `whole` (model.init, which
  // every process reads itself).
  void take_rows(const WholeTensors& whole);
  // Whether a checkpoint path names one of the split tensors.
  static bool is_split(const std::string& path);
  const Var& weight() const { return weight_; }

 private:
  // Moves whole ↔ rows of one tensor; `to_root` gathers.
  void exchange(Tensor& whole, Tensor& rows, bool to_root, const char* what);

  dist::Communicator& comm_;
  Optimizer& optimizer_;
  Var weight_;  // (rows_, D): this process's rows
  int64_t first_row_ = 0, rows_ = 0, total_rows_ = 0, D_ = 0;
};

}  // namespace mf
