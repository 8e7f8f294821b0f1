// A Module's parameters and buffers to and from one HDF5 group, one float32 dataset per tensor,
// named by its state_dict key ("model/layer1.0.conv1.weight") with PyTorch's shape. This is the
// `/model` part of a checkpoint and what scripts/ convert to and from insightface .pth files.
#pragma once

#include <functional>
#include <map>
#include <string>

#include "h5/file.h"
#include "layers/module.h"

namespace mf {

struct LoadModuleOptions {
  // Datasets in the group that the module does not have are an error unless this is set
  // (PyTorch's `num_batches_tracked` counters are always ignored).
  bool allow_unexpected = false;
};

// Tensors a process holds only part of (Partial FC's class weights split over processes, by
// rows): a checkpoint holds them whole. On load, the tensors at paths `wanted` accepts are read
// into `tensors` (path → whole tensor; checked finite and with the module's row length) instead
// of into the module or optimizer; the caller splits them.
struct WholeTensors {
  std::function<bool(const std::string& path)> wanted;
  std::map<std::string, Tensor> tensors;
};

// Copies every parameter and buffer of `module` from `group` into the module's existing storage.
// Errors name the file and the tensor: a missing tensor, a wrong shape (expected vs found) or,
// unless allowed, a tensor the module does not have. Nothing is modified when an error is thrown.
void load_module(const h5::File& file, const std::string& group, Module& module,
                 const LoadModuleOptions& options = {}, WholeTensors* whole = nullptr);

// Writes every parameter and buffer of `module` into `group` (created as needed); a tensor whose
// path is in `replace` is written from there (the whole of a split tensor).
void save_module(h5::File& file, const std::string& group, const Module& module,
                 const std::map<std::string, Tensor>* replace = nullptr);

}  // namespace mf
