// A Module's parameters and buffers to and from one HDF5 group, one float32 dataset per tensor,
// named by its state_dict key ("model/layer1.0.conv1.weight") with PyTorch's shape. This is the
// `/model` part of a checkpoint and what scripts/ convert to and from insightface .pth files.
#pragma once

#include <string>

#include "h5/file.h"
#include "layers/module.h"

namespace mf {

struct LoadModuleOptions {
  // Datasets in the group that the module does not have are an error unless this is set
  // (PyTorch's `num_batches_tracked` counters are always ignored).
  bool allow_unexpected = false;
};

// Copies every parameter and buffer of `module` from `group` into the module's existing storage.
// Errors name the file and the tensor: a missing tensor, a wrong shape (expected vs found) or,
// unless allowed, a tensor the module does not have. Nothing is modified when an error is thrown.
void load_module(const h5::File& file, const std::string& group, Module& module,
                 const LoadModuleOptions& options = {});

// Writes every parameter and buffer of `module` into `group` (created as needed).
void save_module(h5::File& file, const std::string& group, const Module& module);

}  // namespace mf
