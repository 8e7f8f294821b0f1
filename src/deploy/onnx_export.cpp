#include "deploy/onnx_export.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <sstream>
#include <unordered_map>

#include "autograd/ops.h"
#include "util/error.h"
#include "util/file.h"

namespace mf::deploy {

namespace {

// One op of the traced forward pass. Holding the Vars keeps their values (and their identity:
// VarState addresses) alive until the graph is written; the trace runs on one image.
struct TracedOp {
  std::string op;
  std::vector<Var> inputs;
  Var output;
  std::vector<std::pair<std::string, double>> numbers;
  std::vector<std::pair<std::string, Tensor>> tensors;

  double number(const std::string& name) const {
    for (const auto& [key, value] : numbers)
      if (key == name) return value;
    MF_FAIL("export: op '", op, "' reported no attribute '", name, "'");
  }
  Tensor tensor(const std::string& name) const {
    for (const auto& [key, value] : tensors)
      if (key == name) return value;
    return Tensor();
  }
};

class Recorder : public OpTracer {
 public:
  void on_op(const char* op, const std::vector<Var>& inputs, const Var& output,
             std::initializer_list<OpAttribute> attributes) override {
    TracedOp traced{.op = op, .inputs = inputs, .output = output, .numbers = {}, .tensors = {}};
    for (const OpAttribute& a : attributes) {
      if (a.tensor.defined())
        traced.tensors.emplace_back(a.name, a.tensor);
      else
        traced.numbers.emplace_back(a.name, a.number);
    }
    ops.push_back(std::move(traced));
  }
  std::vector<TracedOp> ops;
};

std::string dims_text(const Shape& s) {
  std::ostringstream out;
  for (int i = 0; i < s.rank(); ++i) out << (i ? "x" : "") << s[i];
  return out.str();
}

// IR version that goes with an opset (onnx/docs/Versioning.md: opset 11 shipped with IR 6, 12–14
// with IR 7, 15–17 with IR 8).
int64_t ir_version_for(int opset) {
  return opset <= 11 ? 6 : opset <= 14 ? 7 : 8;
}

// Writes nodes and initializers into a GraphProto. Values are named: the graph input, parameters
// and buffers by their state_dict names, activations "<op><index>" (with a prefix for the
// mirrored copy), constants "const<index>".
class GraphWriter {
 public:
  GraphWriter(onnx::GraphProto& graph, const Module& module) : graph_(graph) {
    for (const auto& [name, var] : module.named_parameters()) params_[var.state().get()] = name;
    for (const auto& [name, tensor] : module.named_buffers()) buffers_[tensor.data()] = name;
  }

  int64_t weights() const { return weights_; }

  // A float initializer named `name` (added once; the same name must come with the same dims).
  const std::string& initializer(const std::string& name, const float* data,
                                 const std::vector<int64_t>& dims) {
    auto [it, added] = initializer_dims_.emplace(name, dims);
    MF_CHECK(it->second == dims, "export: initializer '", name, "' used with two shapes");
    if (added) {
      onnx::TensorProto* t = graph_.add_initializer();
      t->set_name(name);
      t->set_data_type(onnx::TensorProto::FLOAT);
      int64_t n = 1;
      for (int64_t d : dims) {
        t->add_dims(d);
        n *= d;
      }
      t->set_raw_data(std::string(reinterpret_cast<const char*>(data), n * sizeof(float)));
      weights_ += n;
    }
    return it->first;
  }
  std::string constant(const std::vector<float>& values, const std::vector<int64_t>& dims) {
    return initializer("const" + std::to_string(constants_++), values.data(), dims);
  }
  std::string int64_constant(const std::vector<int64_t>& values) {
    const std::string name = "const" + std::to_string(constants_++);
    onnx::TensorProto* t = graph_.add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return name;
  }

  // The name of a parameter (as an initializer of its own shape), or of a constant input.
  std::string weight(const Var& v) { return weight_as(v, v.shape().to_vector()); }
  std::string weight_as(const Var& v, const std::vector<int64_t>& dims) {
    auto it = params_.find(v.state().get());
    const std::string name =
        it != params_.end() ? it->second : "const" + std::to_string(constants_++);
    if (it != params_.end() && initializer_dims_.count(name) && initializer_dims_.at(name) != dims)
      return initializer(name + "_" + std::to_string(dims.size()) + "d", v.value().data(), dims);
    return initializer(name, v.value().data(), dims);
  }
  std::string buffer(const Tensor& t) {
    MF_CHECK(t.defined(),
             "export: a BatchNorm without running statistics cannot be exported "
             "(it normalises with each batch's statistics)");
    auto it = buffers_.find(t.data());
    const std::string name =
        it != buffers_.end() ? it->second : "const" + std::to_string(constants_++);
    return initializer(name, t.data(), t.shape().to_vector());
  }
  bool is_parameter(const Var& v) const { return params_.count(v.state().get()) > 0; }
  std::string parameter_name(const Var& v) const {
    auto it = params_.find(v.state().get());
    return it == params_.end() ? std::string() : it->second;
  }

  onnx::NodeProto* node(const std::string& op_type, const std::vector<std::string>& inputs,
                        const std::string& output) {
    onnx::NodeProto* n = graph_.add_node();
    n->set_op_type(op_type);
    n->set_name(output);
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(output);
    return n;
  }
  static void ints(onnx::NodeProto* n, const char* name, const std::vector<int64_t>& values) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t v : values) a->add_ints(v);
  }
  static void integer(onnx::NodeProto* n, const char* name, int64_t value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(value);
  }
  static void text(onnx::NodeProto* n, const char* name, const std::string& value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(value);
  }
  // `input` repeated along its unit dimensions by a nearest-neighbour Resize (exact): how the
  // graph broadcasts, since OpenCV 4.6 imports a broadcasting Mul or Div wrongly when the batch
  // dimension is symbolic.
  void repeat(const std::string& input, const std::vector<float>& scales,
              const std::string& output) {
    onnx::NodeProto* n = node(
        "Resize", {input, constant({}, {0}), constant(scales, {int64_t(scales.size())})}, output);
    text(n, "mode", "nearest");
  }
  static void real(onnx::NodeProto* n, const char* name, float value) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(value);
  }

 private:
  onnx::GraphProto& graph_;
  std::unordered_map<const VarState*, std::string> params_;
  std::unordered_map<const float*, std::string> buffers_;
  std::map<std::string, std::vector<int64_t>> initializer_dims_;
  int64_t constants_ = 0, weights_ = 0;
};

// The module an op belongs to, for error messages: its first parameter's dotted path without the
// last component ("layer1.0.conv1" for "layer1.0.conv1.weight"), else the last one seen before it.
std::string module_of(const TracedOp& op, const GraphWriter& writer, const std::string& previous) {
  for (const Var& in : op.inputs) {
    const std::string name = writer.parameter_name(in);
    if (!name.empty()) return name.substr(0, name.rfind('.'));
  }
  return previous.empty() ? "the backbone's first op" : "after " + previous;
}

// Emits the traced ops once. `input_name` is what the traced input is called in this copy;
// activation names get `prefix`. Returns the name of `output`.
std::string emit_ops(GraphWriter& w, const std::vector<TracedOp>& ops, const Var& input,
                     const std::string& input_name, const Var& output, const std::string& prefix) {
  std::unordered_map<const VarState*, std::string> names{{input.state().get(), input_name}};
  auto value = [&](const Var& v) -> std::string {
    auto it = names.find(v.state().get());
    return it != names.end() ? it->second : w.weight(v);
  };
  std::string previous_module;
  for (size_t i = 0; i < ops.size(); ++i) {
    const TracedOp& op = ops[i];
    const std::string out = prefix + op.op + std::to_string(i);
    const std::string module = module_of(op, w, previous_module);
    if (module.rfind("after ", 0) != 0 && module.rfind("the ", 0) != 0) previous_module = module;
    const std::vector<Var>& in = op.inputs;
    auto batch_norm = [&](const std::string& y) {
      MF_CHECK(op.number("training") == 0.0, "export: BatchNorm in ", module,
               " ran in training mode (the exporter traces in eval mode; internal)");
      onnx::NodeProto* n =
          w.node("BatchNormalization",
                 {value(in[0]), w.weight(in[1]), w.weight(in[2]),
                  w.buffer(op.tensor("running_mean")), w.buffer(op.tensor("running_var"))},
                 y);
      GraphWriter::real(n, "epsilon", static_cast<float>(op.number("eps")));
    };
    // PReLU's slope broadcasts from the right (ONNX unidirectional broadcasting): (C, 1, 1)
    // against (N, C, H, W), (C) against (N, C).
    auto slope = [&](const Var& alpha, const Var& x) {
      std::vector<int64_t> dims{alpha.dim(0)};
      for (int r = 2; r < x.shape().rank(); ++r) dims.push_back(1);
      return w.weight_as(alpha, dims);
    };
    if (op.op == "conv2d") {
      const int64_t k_h = in[1].dim(2), k_w = in[1].dim(3), pad = int64_t(op.number("pad"));
      const int64_t stride = int64_t(op.number("stride"));
      std::vector<std::string> inputs{value(in[0]), w.weight(in[1])};
      if (in.size() > 2) inputs.push_back(w.weight(in[2]));
      onnx::NodeProto* n = w.node("Conv", inputs, out);
      GraphWriter::ints(n, "kernel_shape", {k_h, k_w});
      GraphWriter::ints(n, "strides", {stride, stride});
      GraphWriter::ints(n, "pads", {pad, pad, pad, pad});
      GraphWriter::integer(n, "group", int64_t(op.number("groups")));
    } else if (op.op == "batch_norm") {
      batch_norm(out);
    } else if (op.op == "batch_norm_prelu") {
      batch_norm(out + "_bn");
      w.node("PRelu", {out + "_bn", slope(in[3], in[0])}, out);
    } else if (op.op == "prelu") {
      w.node("PRelu", {value(in[0]), slope(in[1], in[0])}, out);
    } else if (op.op == "relu" || op.op == "sigmoid") {
      w.node(op.op == "relu" ? "Relu" : "Sigmoid", {value(in[0])}, out);
    } else if (op.op == "mul" && in[0].shape().rank() == 4 && in[1].shape().rank() == 4 &&
               in[1].dim(2) == 1 && in[1].dim(3) == 1 && in[0].shape() != in[1].shape()) {
      // x (N, C, H, W) · s (N, C, 1, 1), the SE block's gate: s repeated to x's shape, then an
      // elementwise Mul.
      w.repeat(value(in[1]), {1.0f, 1.0f, float(in[0].dim(2)), float(in[0].dim(3))},
               out + "_expanded");
      w.node("Mul", {value(in[0]), out + "_expanded"}, out);
    } else if (op.op == "add" || op.op == "sub" || op.op == "mul") {
      const char* type = op.op == "add" ? "Add" : op.op == "sub" ? "Sub" : "Mul";
      w.node(type, {value(in[0]), value(in[1])}, out);
    } else if (op.op == "linear") {
      std::vector<std::string> inputs{value(in[0]), w.weight(in[1])};
      if (in.size() > 2) inputs.push_back(w.weight(in[2]));
      GraphWriter::integer(w.node("Gemm", inputs, out), "transB", 1);
    } else if (op.op == "global_avg_pool") {
      w.node("GlobalAveragePool", {value(in[0])}, out);
    } else if (op.op == "max_pool2d") {
      const int64_t k = int64_t(op.number("kernel")), s = int64_t(op.number("stride"));
      const int64_t p = int64_t(op.number("pad"));
      onnx::NodeProto* n = w.node("MaxPool", {value(in[0])}, out);
      GraphWriter::ints(n, "kernel_shape", {k, k});
      GraphWriter::ints(n, "strides", {s, s});
      GraphWriter::ints(n, "pads", {p, p, p, p});
    } else if (op.op == "reshape") {
      const Shape& to = op.output.shape();
      MF_CHECK(to.rank() >= 1 && to[0] == in[0].dim(0), "export: reshape in ", module,
               " changes the batch dimension (", in[0].shape(), " to ", to,
               "); only reshapes that keep it can run at every batch size");
      if (to.rank() == 2) {
        GraphWriter::integer(w.node("Flatten", {value(in[0])}, out), "axis", 1);
      } else {
        std::vector<int64_t> dims = to.to_vector();
        dims[0] = 0;  // ONNX Reshape: 0 copies the input's dimension (the batch)
        w.node("Reshape", {value(in[0]), w.int64_constant(dims)}, out);
      }
    } else if (op.op == "affine") {
      w.node("Mul", {value(in[0]), w.constant({float(op.number("alpha"))}, {1})}, out + "_scaled");
      w.node("Add", {out + "_scaled", w.constant({float(op.number("beta"))}, {1})}, out);
    } else if (op.op == "l2_normalize") {
      onnx::NodeProto* n = w.node("LpNormalization", {value(in[0])}, out);
      GraphWriter::integer(n, "axis", 1);
      GraphWriter::integer(n, "p", 2);
    } else {
      MF_FAIL("export: no ONNX mapping for op '", op.op, "' (op ", i + 1, " of ", ops.size(),
              " in the forward pass, module ", module,
              "); the mapped ops are listed in src/deploy/onnx_export.h");
    }
    names[op.output.state().get()] = out;
  }
  auto it = names.find(output.state().get());
  MF_CHECK(it != names.end(),
           "export: the backbone's output was not produced by a traced op (internal)");
  return it->second;
}

// A float tensor's name and shape for the graph's input or output list: the batch dimension
// first (the symbol "N" when dynamic), then `dims`.
void describe_value(onnx::ValueInfoProto* v, const std::string& name, int64_t batch,
                    const std::vector<int64_t>& dims) {
  v->set_name(name);
  auto* type = v->mutable_type()->mutable_tensor_type();
  type->set_elem_type(onnx::TensorProto::FLOAT);
  auto* shape = type->mutable_shape();
  if (batch > 0)
    shape->add_dim()->set_dim_value(batch);
  else
    shape->add_dim()->set_dim_param("N");
  for (int64_t d : dims) shape->add_dim()->set_dim_value(d);
}

}  // namespace

OnnxExportSummary export_onnx(Backbone& backbone, const std::string& path,
                              const OnnxExportOptions& options) {
  MF_CHECK(options.opset >= 11 && options.opset <= 17, "export: --opset ", options.opset,
           " is outside 11…17 (the opsets this ONNX library and OpenCV dnn both read)");
  MF_CHECK(options.batch >= 0, "export: --batch must be 'dynamic' or a positive count, got ",
           options.batch);
  const int64_t H = backbone.input_height(), W = backbone.input_width();
  const int64_t D = backbone.embedding_size();

  // Trace one eval-mode forward pass on a single image.
  Recorder recorder;
  Var input(Tensor::zeros({1, 3, H, W}));
  Var output;
  {
    const bool was_training = backbone.is_training();
    backbone.eval();
    NoGradGuard no_grad;
    TraceGuard trace(recorder);
    try {
      output = backbone.forward(input);
    } catch (...) {
      backbone.train(was_training);
      throw;
    }
    backbone.train(was_training);
  }
  MF_CHECK(output.shape() == Shape({1, D}), "export: the backbone returned ", output.shape(),
           " for one image, expected (1, ", D, ")");

  onnx::ModelProto model;
  model.set_ir_version(ir_version_for(options.opset));
  onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(options.opset);
  model.set_producer_name("marginface");
  model.set_doc_string("face embedding model exported by marginface");
  onnx::GraphProto& graph = *model.mutable_graph();
  graph.set_name("marginface_backbone");
  GraphWriter w(graph, backbone);

  // The graph input, and the backbone's input computed from it.
  OnnxExportSummary summary;
  summary.input_name = options.normalize_in_graph ? "image" : "input";
  int64_t in_h = H, in_w = W;
  std::string x = summary.input_name;
  if (options.normalize_in_graph) {
    // FaceRecognizerSF feeds blobFromImage(face, 1, 112×112, 0, swapRB = true): RGB in 0…255.
    // (x − 127.5) / 127.5 as load_face computes it (data/image.cpp).
    in_h = std::max<int64_t>(H, 112);
    in_w = std::max<int64_t>(W, 112);
    MF_CHECK((in_h - H) % 2 == 0 && (in_w - W) % 2 == 0, "export: a ", H, "x", W,
             " backbone cannot be centre-cropped from 112x112 faces");
    w.node("Sub", {x, w.constant({127.5f}, {1})}, "image_centered");
    w.node("Div", {"image_centered", w.constant({127.5f}, {1})}, "image_scaled");
    x = "image_scaled";
    if (in_h != H || in_w != W) {  // SphereFace-20: the centre 112×96 of the aligned face
      const int64_t top = (in_h - H) / 2, left = (in_w - W) / 2;
      w.node("Slice",
             {x, w.int64_constant({top, left}), w.int64_constant({top + H, left + W}),
              w.int64_constant({2, 3})},
             "image_cropped");
      x = "image_cropped";
    }
    summary.input_meaning = "RGB pixel values in 0…255 (what cv::FaceRecognizerSF::feature feeds)";
  } else {
    summary.input_meaning = "RGB, (pixel − 127.5) / 127.5, as marginface embed feeds its backbone";
  }
  describe_value(graph.add_input(), summary.input_name, options.batch, {3, in_h, in_w});

  std::string y = emit_ops(w, recorder.ops, input, x, output, "");
  if (options.flip_sum) {
    // mirror(x)[…, j] = Σ_i x[…, i] · P[i, j] with P[i, W−1−i] = 1: one 1 per column, exact.
    std::vector<float> permutation(static_cast<size_t>(W * W), 0.0f);
    for (int64_t i = 0; i < W; ++i) permutation[i * W + (W - 1 - i)] = 1.0f;
    w.node("MatMul", {x, w.constant(permutation, {W, W})}, "mirrored");
    const std::string y_mirrored = emit_ops(w, recorder.ops, input, "mirrored", output, "mirror/");
    w.node("Add", {y, y_mirrored}, "flip_sum");
    y = "flip_sum";
  }
  if (options.l2norm) {
    // y / ‖y‖ with ops OpenCV 4.6 reads (it has no LpNormalization): the row as (N, 1, 1, D),
    // its L2 norm (N, 1, 1, 1) repeated D times, an elementwise Div.
    w.node("Reshape", {y, w.int64_constant({0, 1, 1, D})}, "embedding_row");
    onnx::NodeProto* norm = w.node("ReduceL2", {"embedding_row"}, "embedding_norm");
    GraphWriter::ints(norm, "axes", {3});
    GraphWriter::integer(norm, "keepdims", 1);
    w.repeat("embedding_norm", {1.0f, 1.0f, 1.0f, float(D)}, "embedding_norms");
    w.node("Div", {"embedding_row", "embedding_norms"}, "embedding_unit");
    GraphWriter::integer(w.node("Flatten", {"embedding_unit"}, "embedding_l2"), "axis", 1);
    y = "embedding_l2";
  }
  // A readable output name: rename the last node's output.
  onnx::NodeProto* last = graph.mutable_node(graph.node_size() - 1);
  last->set_output(0, "embedding");
  summary.output_name = "embedding";
  describe_value(graph.add_output(), summary.output_name, options.batch, {D});
  summary.output_meaning = std::string(options.flip_sum ? "f(x) + f(mirror(x))" : "f(x)") +
                           (options.l2norm ? ", L2-normalised" : ", raw (normalise it yourself)");

  const std::string batch_text = options.batch > 0 ? std::to_string(options.batch) : "N";
  summary.input_shape = batch_text + "x3x" + std::to_string(in_h) + "x" + std::to_string(in_w);
  std::map<std::string, std::string> meta = options.metadata;
  meta["marginface.format_version"] = "1";
  meta["marginface.input_name"] = summary.input_name;
  meta["marginface.input_shape"] = summary.input_shape;
  meta["marginface.input_normalization"] = options.normalize_in_graph ? "in-graph" : "none";
  meta["marginface.backbone_input"] = dims_text(Shape{H, W});
  meta["marginface.flip"] = options.flip_sum ? "sum" : "off";
  meta["marginface.output"] = options.l2norm ? "l2" : "raw";
  meta["marginface.embedding_size"] = std::to_string(D);
  for (const auto& [key, value] : meta) {
    onnx::StringStringEntryProto* kv = model.add_metadata_props();
    kv->set_key(key);
    kv->set_value(value);
  }

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    MF_FAIL("export: the ONNX checker rejects the graph written for ", path, ": ", e.what());
  }
  std::string bytes;
  MF_CHECK(model.SerializeToString(&bytes), "export: protobuf could not serialise the model for ",
           path, " (a model over 2 GiB?)");
  write_file_atomically(path, bytes);
  summary.nodes = graph.node_size();
  summary.initializers = graph.initializer_size();
  summary.weights = w.weights();
  summary.file_bytes = static_cast<int64_t>(bytes.size());
  return summary;
}

}  // namespace mf::deploy
