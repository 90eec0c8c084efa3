// File: server/api/snapshot_streams.h
// -----------------------------------------------------------------------------
// The snapshot reads: a trainer state as a stream of SnapshotChunks (a header with the
// tensors' labels and shapes, then their values in chunks of at most 256 Ki floats),
// for one snapshot (GetSnapshot) or for every snapshot of a session as it is written
// (StreamSnapshots), and a snapshot's metadata (GetSnapshot, ListSnapshots). Reading,
// parsing and chunking run on the executor.
#ifndef ALIGND_SERVER_API_SNAPSHOT_STREAMS_H_
#define ALIGND_SERVER_API_SNAPSHOT_STREAMS_H_

#include <string>
#include <vector>

#include "alignd/v1/sessions.grpc.pb.h"
#include "core/trainer.h"
#include "server/api/executor.h"
#include "server/sessions/session_manager.h"

namespace alignd::server {

constexpr int kValuesPerChunk = 256 * 1024;

// A state's metadata (name, step, epoch, tensor shapes, layer kinds; no create_time), for
// the session's network (its layers say which tensors are conv kernels: dims
// [out, in, kh, kw]).
v1::Snapshot SnapshotMetadata(const std::string& name, const core::TrainerState& state,
                              const core::NetworkConfig& net);
// Weights, biases and feedback of a state, as chunks named `name` (header, then values:
// matrices column-major, conv kernels in C order of [out, in, kh, kw]).
std::vector<v1::SnapshotChunk> SnapshotChunks(const std::string& name,
                                              const core::TrainerState& state,
                                              const core::NetworkConfig& net);

grpc::ServerWriteReactor<v1::SnapshotChunk>* NewSnapshotReader(
    SessionManager* sessions, Executor* executor, const v1::ReadSnapshotRequest& request);
grpc::ServerWriteReactor<v1::SnapshotChunk>* NewSnapshotStream(
    SessionManager* sessions, Executor* executor, const v1::StreamSnapshotsRequest& request);

}  // namespace alignd::server

#endif  // ALIGND_SERVER_API_SNAPSHOT_STREAMS_H_
