// kvstore_bench: put and get throughput of KV blocks through one KV store
// node on loopback (a real gRPC socket, node in this process), reported
// against single-threaded memcpy bandwidth measured in the same run. Gets
// are measured into memory the caller allocated beforehand (GetManyInto, as
// a KV cache import), both streamed over the socket and through the
// same-host shared memory path (kvstore/shared_memory.h, the client's
// default), and into new strings (GetMany) through shared memory.
//
// Blocks have the 125M benchmark model's shape: 16 tokens, 12 layers, 4 KV
// heads, head_dim 64, F32, so 393,216 payload bytes plus a 96-byte header.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_format.h"
#include "bench/machine_limits.h"
#include "engine/status_macros.h"
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
  // Gets into memory the caller owns (GetManyInto, as a KV cache import).
  double get_stream_gbps = 0;         // every Get streamed over the socket
  double get_shared_memory_gbps = 0;  // the client's default same-host path
  // Gets into new strings (GetMany), through shared memory.
  double get_strings_gbps = 0;
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

// Best seconds to put every block, the node emptied before each round.
absl::StatusOr<double> TimePuts(KvStoreClient& client,
                                const std::vector<std::string>& blocks,
                                const std::vector<BlockKey>& keys,
                                int repetitions) {
  const std::vector<absl::string_view> views(blocks.begin(), blocks.end());
  absl::Status failure;
  const double seconds = BestSeconds(
      repetitions,
      [&] {
        for (const absl::Status& status : client.PutMany(views)) {
          if (!status.ok()) failure = status;
        }
      },
      [&] { (void)client.Remove(keys); });
  if (!failure.ok()) return failure;
  return seconds;
}

// Best seconds to get every block into buffers allocated (and touched)
// beforehand, as a decode worker imports blocks into its KV cache; checks
// the bytes afterwards.
absl::StatusOr<double> TimeGetsInto(KvStoreClient& client,
                                    const std::vector<std::string>& blocks,
                                    const std::vector<BlockKey>& keys,
                                    int repetitions) {
  std::vector<std::string> into(blocks.size(),
                                std::string(blocks[0].size(), '\0'));
  absl::Status failure;
  const double seconds = BestSeconds(
      repetitions,
      [&] {
        const std::vector<absl::Status> statuses = client.GetManyInto(
            keys, [&](size_t index, absl::string_view block) {
              if (block.size() != into[index].size()) {
                return absl::InternalError("a block changed size");
              }
              std::memcpy(into[index].data(), block.data(), block.size());
              return absl::OkStatus();
            });
        for (const absl::Status& status : statuses) {
          if (!status.ok()) failure = status;
        }
      },
      [] {});
  if (!failure.ok()) return failure;
  if (into != blocks) return absl::InternalError("a block came back different");
  return seconds;
}

// Best seconds to get every block as new strings; checks the bytes
// afterwards.
absl::StatusOr<double> TimeGets(KvStoreClient& client,
                                const std::vector<std::string>& blocks,
                                const std::vector<BlockKey>& keys,
                                int repetitions) {
  std::vector<absl::StatusOr<std::string>> got;
  const double seconds = BestSeconds(
      repetitions, [&] { got = client.GetMany(keys); }, [] {});
  for (size_t i = 0; i < got.size(); ++i) {
    if (!got[i].ok()) return got[i].status();
    if (*got[i] != blocks[i]) {
      return absl::InternalError("a block came back different");
    }
  }
  return seconds;
}

absl::StatusOr<std::unique_ptr<KvStoreClient>> Connect(
    const std::string& address, bool shared_memory) {
  KvStoreClientOptions options;
  options.nodes = {address};
  options.max_in_flight = absl::GetFlag(FLAGS_in_flight);
  options.shared_memory = shared_memory;
  return KvStoreClient::Create(options);
}

absl::StatusOr<Figures> Measure() {
  Figures figures;
  figures.blocks = absl::GetFlag(FLAGS_blocks);
  figures.in_flight = absl::GetFlag(FLAGS_in_flight);
  const int repetitions = absl::GetFlag(FLAGS_repetitions);
  std::vector<std::string> blocks;
  std::vector<BlockKey> keys;
  for (int i = 0; i < figures.blocks; ++i) {
    keys.push_back(testing::TestKey(i));
    blocks.push_back(testing::MakeTestBlock(BenchLayout(), keys.back(), i));
  }
  figures.block_bytes = blocks[0].size();
  const double total_gb = figures.block_bytes * blocks.size() / 1e9;

  KvStoreServerOptions server_options;
  server_options.listen = "127.0.0.1:0";
  server_options.memory_budget_bytes = figures.block_bytes * blocks.size() * 2;
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<KvStoreServer> server,
                          KvStoreServer::Start(server_options));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<KvStoreClient> streaming,
                          Connect(server->address(), false));
  TANDEM_ASSIGN_OR_RETURN(std::unique_ptr<KvStoreClient> same_host,
                          Connect(server->address(), true));
  TANDEM_ASSIGN_OR_RETURN(const double put_seconds,
                          TimePuts(*streaming, blocks, keys, repetitions));
  TANDEM_ASSIGN_OR_RETURN(const double stream_seconds,
                          TimeGetsInto(*streaming, blocks, keys, repetitions));
  TANDEM_ASSIGN_OR_RETURN(const double shared_seconds,
                          TimeGetsInto(*same_host, blocks, keys, repetitions));
  TANDEM_ASSIGN_OR_RETURN(const double strings_seconds,
                          TimeGets(*same_host, blocks, keys, repetitions));
  figures.put_gbps = total_gb / put_seconds;
  figures.get_stream_gbps = total_gb / stream_seconds;
  figures.get_shared_memory_gbps = total_gb / shared_seconds;
  figures.get_strings_gbps = total_gb / strings_seconds;
  figures.memcpy_gbps = MeasureMemcpyBandwidth(figures.block_bytes,
                                               size_t{256} << 20, repetitions);
  return figures;
}

void Print(const Figures& figures, bool json) {
  const double memcpy = figures.memcpy_gbps;
  if (json) {
    nlohmann::json out = {
        {"block_bytes", figures.block_bytes},
        {"blocks", figures.blocks},
        {"in_flight", figures.in_flight},
        {"memcpy_gbps", memcpy},
        {"put_gbps", figures.put_gbps},
        {"get_stream_gbps", figures.get_stream_gbps},
        {"get_shared_memory_gbps", figures.get_shared_memory_gbps},
        {"get_strings_gbps", figures.get_strings_gbps},
        {"put_fraction_of_memcpy", figures.put_gbps / memcpy},
        {"get_stream_fraction_of_memcpy", figures.get_stream_gbps / memcpy},
        {"get_shared_memory_fraction_of_memcpy",
         figures.get_shared_memory_gbps / memcpy},
        {"get_strings_fraction_of_memcpy", figures.get_strings_gbps / memcpy},
    };
    std::printf("%s\n", out.dump().c_str());
    return;
  }
  std::printf("block %zu bytes, %d blocks, %d in flight\n", figures.block_bytes,
              figures.blocks, figures.in_flight);
  std::printf("memcpy              %7.2f GB/s\n", memcpy);
  const std::pair<const char*, double> rows[] = {
      {"put", figures.put_gbps},
      {"get, socket", figures.get_stream_gbps},
      {"get, shared memory", figures.get_shared_memory_gbps},
      {"get, new strings", figures.get_strings_gbps}};
  for (const auto& [name, gbps] : rows) {
    std::printf("%-19s %7.2f GB/s  %6.0f blocks/s  %.3f of memcpy\n", name,
                gbps, gbps * 1e9 / figures.block_bytes, gbps / memcpy);
  }
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
