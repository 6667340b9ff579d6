// kvstore_bench: put and get throughput of KV blocks through one KV store
// node on loopback (a real gRPC socket, node in this process), reported
// against single-threaded memcpy bandwidth measured in the same run.
//
// Blocks have the 125M benchmark model's shape: 16 tokens, 12 layers, 4 KV
// heads, head_dim 64, F32, so 393,216 payload bytes plus a 96-byte header.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "bench/machine_limits.h"
#include "kvstore/kvstore_client.h"
#include "kvstore/kvstore_server.h"
#include "kvstore/test_blocks.h"
#include "nlohmann/json.hpp"

ABSL_FLAG(int, blocks, 256, "distinct blocks moved per repetition");
ABSL_FLAG(int, in_flight, 16, "concurrent rpcs of the client");
ABSL_FLAG(int, repetitions, 5, "repetitions of each measurement (best kept)");
ABSL_FLAG(bool, json, false, "print one JSON object instead of a table");

namespace tandem::bench {
namespace {

struct Figures {
  size_t block_bytes = 0;
  int blocks = 0;
  int in_flight = 0;
  double put_gbps = 0;
  double get_gbps = 0;
  double memcpy_gbps = 0;
};

// The benchmark model's block shape.
KvLayout BenchLayout() {
  return KvLayout{
      .num_layers = 12, .num_kv_heads = 4, .head_dim = 64, .block_size = 16};
}

// Best-of-`repetitions` seconds of `run`, with `reset` untimed before each.
template <typename Run, typename Reset>
double BestSeconds(int repetitions, Run run, Reset reset) {
  double best = 1e30;
  for (int r = 0; r < repetitions; ++r) {
    reset();
    const double start = NowSeconds();
    run();
    best = std::min(best, NowSeconds() - start);
  }
  return best;
}

absl::StatusOr<Figures> Measure() {
  Figures figures;
  figures.blocks = absl::GetFlag(FLAGS_blocks);
  figures.in_flight = absl::GetFlag(FLAGS_in_flight);
  const int repetitions = absl::GetFlag(FLAGS_repetitions);
  std::vector<std::string> blocks;
  std::vector<absl::string_view> views;
  std::vector<BlockKey> keys;
  for (int i = 0; i < figures.blocks; ++i) {
    keys.push_back(testing::TestKey(i));
    blocks.push_back(testing::MakeTestBlock(BenchLayout(), keys.back(), i));
  }
  views.assign(blocks.begin(), blocks.end());
  figures.block_bytes = blocks[0].size();
  const size_t total_bytes = figures.block_bytes * blocks.size();

  KvStoreServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.memory_budget_bytes = total_bytes * 2;
  absl::StatusOr<std::unique_ptr<KvStoreServer>> server =
      KvStoreServer::Start(server_options);
  if (!server.ok()) return server.status();
  KvStoreClientOptions client_options;
  client_options.nodes = {(*server)->address()};
  client_options.max_in_flight = figures.in_flight;
  absl::StatusOr<std::unique_ptr<KvStoreClient>> client =
      KvStoreClient::Create(client_options);
  if (!client.ok()) return client.status();

  absl::Status failure;
  const double put_seconds = BestSeconds(
      repetitions,
      [&] {
        for (const absl::Status& status : (*client)->PutMany(views)) {
          if (!status.ok()) failure = status;
        }
      },
      [&] { (void)(*client)->Remove(keys); });
  if (!failure.ok()) return failure;
  const double get_seconds = BestSeconds(
      repetitions,
      [&] {
        std::vector<absl::StatusOr<std::string>> got = (*client)->GetMany(keys);
        for (size_t i = 0; i < got.size(); ++i) {
          if (!got[i].ok()) {
            failure = got[i].status();
          } else if (*got[i] != blocks[i]) {
            failure = absl::InternalError("a block came back different");
          }
        }
      },
      [] {});
  if (!failure.ok()) return failure;

  figures.put_gbps = total_bytes / put_seconds / 1e9;
  figures.get_gbps = total_bytes / get_seconds / 1e9;
  figures.memcpy_gbps = MeasureMemcpyBandwidth(figures.block_bytes,
                                               size_t{256} << 20, repetitions);
  return figures;
}

void Print(const Figures& figures, bool json) {
  const double get_fraction = figures.get_gbps / figures.memcpy_gbps;
  if (json) {
    nlohmann::json out = {
        {"block_bytes", figures.block_bytes},
        {"blocks", figures.blocks},
        {"in_flight", figures.in_flight},
        {"put_gbps", figures.put_gbps},
        {"get_gbps", figures.get_gbps},
        {"memcpy_gbps", figures.memcpy_gbps},
        {"put_fraction_of_memcpy", figures.put_gbps / figures.memcpy_gbps},
        {"get_fraction_of_memcpy", get_fraction},
    };
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("block %zu bytes, %d blocks, %d in flight\n", figures.block_bytes,
              figures.blocks, figures.in_flight);
  std::printf("memcpy  %7.2f GB/s\n", figures.memcpy_gbps);
  std::printf("put     %7.2f GB/s  %6.0f blocks/s  %.3f of memcpy\n",
              figures.put_gbps, figures.put_gbps * 1e9 / figures.block_bytes,
              figures.put_gbps / figures.memcpy_gbps);
  std::printf("get     %7.2f GB/s  %6.0f blocks/s  %.3f of memcpy\n",
              figures.get_gbps, figures.get_gbps * 1e9 / figures.block_bytes,
              get_fraction);
}

}  // namespace
}  // namespace tandem::bench

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Put and get throughput of KV blocks through one KV store node on "
      "loopback, as fractions of memcpy bandwidth.\n"
      "Usage: kvstore_bench [--json] [--blocks N] [--in_flight N]");
  absl::ParseCommandLine(argc, argv);
  absl::StatusOr<tandem::bench::Figures> figures = tandem::bench::Measure();
  if (!figures.ok()) {
    std::fprintf(stderr, "kvstore_bench: %s\n",
                 figures.status().ToString().c_str());
    return 1;
  }
  tandem::bench::Print(*figures, absl::GetFlag(FLAGS_json));
  return 0;
}
