#include "apps/commands.h"

namespace mf::apps {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"train", "train a backbone and head from a YAML config", run_train},
      {"ablate", "train every head of an ablation config identically, one results table",
       run_ablate},
      {"eval", "face verification: LFW 10-fold protocol or a generic pair list", run_eval},
      {"embed", "embed face images (a folder or a list) into an HDF5 file", run_embed},
      {"pack", "pack image folders into one HDF5 file for training", run_pack},
      {"clean", "drop noisy training images with a Sub-center ArcFace model", run_clean},
      {"align", "detect and align the faces in a folder of photos (112x112 / 112x96)", run_align},
      {"compare", "1:1: cosine similarity of two faces, same or different", run_compare},
      {"search", "1:N: the gallery faces most similar to each query", run_search},
      {"export", "export a checkpoint's backbone as ONNX (OpenCV dnn, FaceRecognizerSF)",
       run_export},
      {"bench", "time a training or inference step, per op", run_bench},
      {"info", "show the build, thread and BLAS configuration", run_info},
      {"describe", "show a backbone's parameters and GFLOPs per stage", run_describe},
  };
  return table;
}

}  // namespace mf::apps
