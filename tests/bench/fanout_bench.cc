// fanout_bench: N subscribers follow one session's metric stream at once (N connections,
// driven by --threads client threads through completion queues), and each
// event's latency is measured from its wall_time (stamped by alignd when the training
// step logged it) to its arrival here, on the same machine's clock. A C++ client, so
// that what is measured is alignd's fan-out and not a client's interpreter.
//
//   fanout_bench --address HOST:PORT --session sessions/ID [--subscribers 32]
//                [--threads 2] [--warmup_s 0.5]
//
// Events stamped before --warmup_s after the start are not counted (the subscribers are
// connecting and catching up on history). Prints one JSON line: subscribers, events
// counted, p50/p99/max in milliseconds.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "alignd/v1/sessions.grpc.pb.h"

namespace {

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string address, session;
  int subscribers = 32, threads = 2;
  double warmup_s = 0.5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--address" && i + 1 < argc) {
      address = argv[++i];
    } else if (a == "--session" && i + 1 < argc) {
      session = argv[++i];
    } else if (a == "--subscribers" && i + 1 < argc) {
      subscribers = std::stoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      threads = std::stoi(argv[++i]);
    } else if (a == "--warmup_s" && i + 1 < argc) {
      warmup_s = std::stod(argv[++i]);
    } else {
      std::fprintf(stderr,
                   "usage: %s --address HOST:PORT --session sessions/ID [--subscribers N] "
                   "[--threads T] [--warmup_s S]\n",
                   argv[0]);
      return 2;
    }
  }
  if (address.empty() || session.empty() || subscribers < 1 || threads < 1) {
    std::fprintf(stderr, "fanout_bench: --address and --session are required\n");
    return 2;
  }
  const double counted_from = NowSeconds() + warmup_s;
  // --threads client threads drive the streams through completion queues, as a
  // dashboard's backend would: N threads blocking in Read would spend the machine's two
  // cores on context switches and measure them.
  struct Stream {
    std::unique_ptr<alignd::v1::TrainingService::Stub> stub;
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientAsyncReader<alignd::v1::MetricEvent>> reader;
    alignd::v1::MetricEvent event;
    grpc::Status status;
    bool finishing = false;
  };
  // Streams k, k + threads, k + 2 threads, ... on client thread k, each with its own queue.
  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues;
  for (int t = 0; t < threads; ++t) queues.push_back(std::make_unique<grpc::CompletionQueue>());
  std::vector<std::unique_ptr<Stream>> streams;
  for (int k = 0; k < subscribers; ++k) {
    auto st = std::make_unique<Stream>();
    grpc::ChannelArguments args;
    args.SetInt("grpc.channel_id", k);  // a connection each, as N dashboards would have
    st->stub = alignd::v1::TrainingService::NewStub(
        grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
    alignd::v1::StreamMetricsRequest req;
    req.set_parent(session);
    st->reader = st->stub->PrepareAsyncStreamMetrics(&st->ctx, req, queues[k % threads].get());
    st->reader->StartCall(st.get());  // tag: the stream; its first completion starts reading
    streams.push_back(std::move(st));
  }
  std::mutex mu;
  std::vector<double> latencies_ms;
  int failures = 0;
  std::vector<std::thread> pollers;
  for (int t = 0; t < threads; ++t) {
    pollers.emplace_back([&, t] {
      std::vector<double> mine;
      int open = 0, failed = 0;
      for (int k = t; k < subscribers; k += threads) ++open;
      void* tag;
      bool ok;
      while (open > 0 && queues[t]->Next(&tag, &ok)) {
        const double now = NowSeconds();
        Stream* st = static_cast<Stream*>(tag);
        if (st->finishing) {  // Finish completed
          if (!st->status.ok()) ++failed;
          --open;
          continue;
        }
        if (ok && st->event.has_step()) {
          const double stamped =
              st->event.wall_time().seconds() + 1e-9 * st->event.wall_time().nanos();
          if (stamped >= counted_from) mine.push_back(1e3 * (now - stamped));
        }
        if (!ok || st->event.has_end()) {
          st->finishing = true;
          st->reader->Finish(&st->status, st);
          continue;
        }
        st->event.Clear();
        st->reader->Read(&st->event, st);
      }
      std::lock_guard<std::mutex> lock(mu);
      failures += failed;
      latencies_ms.insert(latencies_ms.end(), mine.begin(), mine.end());
    });
  }
  for (auto& p : pollers) p.join();
  if (latencies_ms.empty() || failures > 0) {
    std::fprintf(stderr, "fanout_bench: %zu events counted, %d streams failed\n",
                 latencies_ms.size(), failures);
    return 1;
  }
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto at = [&](double q) {
    return latencies_ms[std::min(
        latencies_ms.size() - 1,
        static_cast<size_t>(q * static_cast<double>(latencies_ms.size())))];
  };
  std::printf(
      "{\"subscribers\": %d, \"events\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": "
      "%.3f}\n",
      subscribers, latencies_ms.size(), at(0.5), at(0.99), latencies_ms.back());
  return 0;
}
