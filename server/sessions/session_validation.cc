// File: server/sessions/session_validation.cc
// -----------------------------------------------------------------------------
// What Create checks before a session exists (SessionManager::Validate): its id, its config
// against the server's limits, its data sets and their shapes, and the memory it would need,
// each refusal naming the field or flag; and the record a valid request becomes.
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "core/trainer.h"
#include "server/api/proto_convert.h"
#include "server/api/resource_names.h"
#include "server/export/exports.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {
namespace {

std::string NewSessionId() {
  static std::mt19937_64 rng(std::random_device{}());
  static absl::Mutex mu;
  absl::MutexLock lock(&mu);
  return absl::StrFormat("%012x", rng() & 0xffffffffffffULL);
}

}  // namespace

absl::StatusOr<SessionManager::NewSession> SessionManager::Validate(
    const v1::CreateSessionRequest& create) {
  const v1::Session& req = create.session();
  const std::string id = create.session_id().empty() ? NewSessionId() : create.session_id();
  if (!create.session_id().empty()) {
    const std::string& sid = create.session_id();
    bool ok = sid.size() <= 63 && sid[0] >= 'a' && sid[0] <= 'z';
    for (char c : sid) ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-');
    if (!ok)
      return absl::InvalidArgumentError(
          absl::StrCat("session_id '", Excerpt(sid),
                       "' must be 1-63 characters of [a-z0-9-] starting with a letter"));
  }
  auto prefixed = [](const absl::Status& st) {
    return absl::Status(st.code(), absl::StrCat("session.", st.message()));
  };
  // Layers without an input shape take the training set's feature shape (its record: no
  // load). A data set that is not there is named below, where it is loaded.
  std::vector<int64_t> feature_shape;
  const auto& net = req.config().network();
  if (net.layers_size() > 0 && !net.has_input_shape() &&
      ParseDatasetName(req.train_dataset(), "session.train_dataset").ok()) {
    auto meta = datasets_->Get(req.train_dataset());
    if (meta.ok())
      feature_shape.assign(meta->feature_shape().begin(), meta->feature_shape().end());
    else if (absl::IsNotFound(meta.status()))  // not "input_shape is not given"
      return absl::NotFoundError(absl::StrCat("session.train_dataset: ", meta.status().message()));
  }
  auto options_or = ToTrainerOptions(req.config(), &feature_shape);
  if (!options_or.ok()) return prefixed(options_or.status());
  core::TrainerOptions options = std::move(*options_or);
  // Activations: a conv layer's is its channels x height x width (the layer is named).
  for (size_t i = 0; i < options.network.sizes.size(); ++i)
    if (options.network.sizes[i] > options_.max_layer_width)
      return absl::InvalidArgumentError(absl::StrCat(
          "session.config.network.",
          options.network.layers.empty() || i == 0 ? absl::StrCat("sizes[", i, "]")
                                                   : absl::StrCat("layers[", i - 1, "]'s output"),
          " is ", options.network.sizes[i], " units; the server allows at most ",
          options_.max_layer_width, " (--max_layer_width)"));
  // Weights: dense out x in, conv out channels x in channels x kernel.
  int64_t params = 0;
  bool every_layer = true;  // counted them all (else stopped over the limit)
  {
    const std::vector<core::LayerSpec> specs = core::LayerSpecs(options.network);
    int64_t channels = options.network.input.empty() ? 0 : options.network.input.channels;
    // Each term is below 2^61 (CompleteNetwork bounds every activation by 2^30, a conv's
    // channels by 2^16 and its kernel by 2^30 weights per filter): stopping once over the
    // limit keeps the sum from overflowing, however many layers (at most 1024).
    for (size_t i = 0; i < specs.size() && params <= options_.max_parameters; ++i) {
      const core::LayerSpec& l = specs[i];
      const int64_t in = options.network.sizes[i], out = options.network.sizes[i + 1];
      if (l.kind == core::LayerKind::kDense) {
        params += in * out;
        channels = 0;
      } else if (l.kind == core::LayerKind::kConv) {
        params +=
            int64_t{l.units} * channels * l.kernel_h * (l.kernel_w == 0 ? l.kernel_h : l.kernel_w);
        channels = l.units;
      } else if (l.kind == core::LayerKind::kFlatten) {
        channels = 0;
      }
      every_layer = i + 1 == specs.size();
    }
  }
  if (params > options_.max_parameters)
    return absl::InvalidArgumentError(absl::StrCat(
        "the network has ", every_layer ? "" : "at least ", params, " weights; the server allows ",
        options_.max_parameters, " (--max_parameters)"));
  if (options.threads > options_.max_threads)
    return absl::InvalidArgumentError(
        absl::StrCat("session.config.threads is ", options.threads, "; the server runs at most ",
                     options_.max_threads, " training threads (--max_threads)"));
  if (req.train_dataset().empty())
    return absl::InvalidArgumentError("session.train_dataset is required");
  RETURN_IF_ERROR(ParseDatasetName(req.train_dataset(), "session.train_dataset").status());
  if (!req.eval_dataset().empty())
    RETURN_IF_ERROR(ParseDatasetName(req.eval_dataset(), "session.eval_dataset").status());
  if (req.snapshot_every() < 0 || (req.has_checkpoint_every() && req.checkpoint_every() < 1))
    return absl::InvalidArgumentError(
        "session.snapshot_every must be >= 0 and session.checkpoint_every >= 1");
  if (req.display_name().size() > 256)
    return absl::InvalidArgumentError("session.display_name is longer than 256 bytes");
  RETURN_IF_ERROR(ValidateLabels(req.labels(), "session.labels"));
  // Shapes against the data (core::ValidateTraining below; no network is built).
  auto train_or = datasets_->Load(req.train_dataset());
  if (!train_or.ok())
    return absl::Status(train_or.status().code(),
                        absl::StrCat("session.train_dataset: ", train_or.status().message()));
  std::shared_ptr<const core::Dataset> train = *train_or;
  std::shared_ptr<const core::Dataset> eval;
  if (!req.eval_dataset().empty()) {
    auto e = datasets_->Load(req.eval_dataset());
    if (!e.ok())
      return absl::Status(e.status().code(),
                          absl::StrCat("session.eval_dataset: ", e.status().message()));
    eval = *e;
  }
  // The config against the data first: a batch larger than the data set is the caller's
  // mistake to name (session.config.batch_size), not a matter of memory.
  if (absl::Status st = core::ValidateTraining(options, *train, eval.get()); !st.ok())
    return absl::InvalidArgumentError(absl::StrCat("session.config.", st.message()));
  // Memory, before anything of the session's size is allocated: the weights are bounded
  // above, but the workspaces grow with the batch (a 1-100000-1 net at batch 200000
  // needs 80 GB) and the data sets with their size.
  {
    auto data_bytes = [](const core::Dataset& d) {
      return 4 * (static_cast<int64_t>(d.features.size()) + static_cast<int64_t>(d.targets.size()) +
                  static_cast<int64_t>(d.labels.size()));
    };
    const int64_t engine = core::EstimateTrainingBytes(options, train->size());
    const int64_t data = data_bytes(*train) + (eval ? data_bytes(*eval) : 0);
    const int64_t total =
        engine > options_.max_session_bytes - data ? options_.max_session_bytes + 1 : engine + data;
    if (total > options_.max_session_bytes)
      return absl::ResourceExhaustedError(
          absl::StrCat("the session would need about ", engine >> 20, " MiB for training (network ",
                       options.network.layers.empty() ? "" : "of layers with activations ",
                       absl::StrJoin(options.network.sizes, "-"), " at batch_size ",
                       options.batch_size, ") and ", data >> 20, " MiB of data; the server allows ",
                       options_.max_session_bytes >> 20, " MiB per session (--max_session_bytes)"));
  }

  v1::Session record;
  record.set_name(SessionName(id));
  record.set_display_name(req.display_name());
  *record.mutable_labels() = req.labels();
  *record.mutable_config() = ToProto(options);
  record.set_train_dataset(req.train_dataset());
  record.set_eval_dataset(req.eval_dataset());
  record.set_state(v1::SESSION_STATE_QUEUED);
  record.set_total_steps(core::TotalSteps(options, train->size()));
  record.set_snapshot_every(req.snapshot_every());
  record.set_checkpoint_every(req.has_checkpoint_every() ? req.checkpoint_every()
                                                         : options_.checkpoint_every);
  *record.mutable_create_time() = Now();
  return NewSession{std::move(record), std::move(options)};
}

absl::StatusOr<std::string> SessionManager::InitialState(const std::string& safetensors,
                                                         const core::TrainerOptions& options,
                                                         const v1::Session& record) {
  ASSIGN_OR_RETURN(const auto file, ParseSafetensors(safetensors, "initial_weights"));
  ASSIGN_OR_RETURN(std::shared_ptr<const core::Dataset> train,
                   datasets_->Load(record.train_dataset()));
  std::shared_ptr<const core::Dataset> eval;
  if (!record.eval_dataset().empty()) {
    ASSIGN_OR_RETURN(eval, datasets_->Load(record.eval_dataset()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<core::Trainer> trainer,
                   core::Trainer::Create(options, train, eval));
  core::TrainerState state = trainer->ExportState();
  std::map<int, core::Matrix> feedback;  // B as the rule takes it: SetFeedback's checks
  RETURN_IF_ERROR(ApplySafetensors(file, options.network, "initial_weights", &state, &feedback));
  if (absl::Status st = trainer->ImportState(state); !st.ok())
    return absl::InvalidArgumentError(absl::StrCat("initial_weights: ", st.message()));
  for (const auto& [layer, b] : feedback)
    if (absl::Status st = trainer->SetFeedback(layer, b); !st.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("initial_weights: tensor B", layer, ": ", st.message()));
  return core::SerializeState(trainer->ExportState());
}

}  // namespace alignd::server
