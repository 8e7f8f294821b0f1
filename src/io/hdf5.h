// Moved to tensor/hdf5.h (data loaders below io read HDF5 too). Kept until every include moves.
#pragma once
#include "tensor/hdf5.h"
