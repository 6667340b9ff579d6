#include "kvstore/kvstore_client.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "glog/logging.h"
#include "kvstore/client_calls.h"
#include "kvstore/kvstore_proto.h"
#include "kvstore/kvstore_service.h"
#include "kvstore/rendezvous.h"

namespace tandem {

using kvstore_internal::CallLimiter;
using kvstore_internal::CallTarget;
using kvstore_internal::FromNode;
using kvstore_internal::GetCall;
using kvstore_internal::PutCall;
using kvstore_internal::UnaryCall;

struct KvStoreClient::Node {
  std::string address;
  bool same_host = false;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::KvStore::Stub> stub;
};

namespace {

using ExistsCall = UnaryCall<v1::ExistsRequest, v1::ExistsResponse>;
using RemoveCall = UnaryCall<v1::RemoveRequest, v1::RemoveResponse>;
using StatsCall = UnaryCall<v1::StatsRequest, v1::StatsResponse>;
using Done = std::function<void(grpc::Status)>;

// Starts a unary call through `start`, which calls the stub's callback
// method with the call's context, request, response and the completion.
template <typename Call, typename Start>
void StartUnary(Call* call, absl::Time deadline, CallLimiter* limiter,
                Start start) {
  call->context.set_deadline(absl::ToChronoTime(deadline));
  limiter->Acquire();
  start(&call->context, &call->request, &call->response,
        Done([call, limiter](grpc::Status status) {
          call->status = std::move(status);
          limiter->Release();
        }));
}

absl::Status CheckOptions(const KvStoreClientOptions& options) {
  if (options.nodes.empty()) {
    return absl::InvalidArgumentError("kvstore client needs at least one node");
  }
  absl::flat_hash_set<std::string> seen;
  for (const std::string& node : options.nodes) {
    if (!seen.insert(node).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("kvstore node ", node, " is listed twice"));
    }
  }
  if (options.timeout <= absl::ZeroDuration() || options.chunk_bytes == 0 ||
      options.max_in_flight <= 0 || options.max_block_bytes == 0) {
    return absl::InvalidArgumentError(
        "kvstore client timeout, chunk_bytes, max_in_flight and "
        "max_block_bytes must be positive");
  }
  if (options.shared_memory && options.shared_memory_slot_bytes == 0) {
    return absl::InvalidArgumentError(
        "kvstore client shared_memory_slot_bytes must be positive");
  }
  if (options.chunk_bytes > kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "kvstore client chunk_bytes must be at most ", kMaxChunkBytes));
  }
  return absl::OkStatus();
}

// GetMany's results: each block as a string of its own.
class StringSink final : public kvstore_internal::GetSink {
 public:
  explicit StringSink(size_t count) : results(count) {}
  void Deliver(size_t index, absl::string_view block,
               std::string* owned) override {
    results[index] = owned != nullptr ? std::move(*owned) : std::string(block);
  }
  void Fail(size_t index, absl::Status status) override {
    results[index] = std::move(status);
  }
  std::vector<absl::StatusOr<std::string>> results;
};

// GetManyInto's results: what the consumer made of each block.
class ConsumerSink final : public kvstore_internal::GetSink {
 public:
  ConsumerSink(size_t count, KvStoreClient::BlockConsumer consume)
      : results(count), consume_(consume) {}
  void Deliver(size_t index, absl::string_view block,
               std::string* owned) override {
    results[index] = consume_(index, block);
  }
  void Fail(size_t index, absl::Status status) override {
    results[index] = std::move(status);
  }
  std::vector<absl::Status> results;

 private:
  const KvStoreClient::BlockConsumer consume_;
};

}  // namespace

KvStoreClient::KvStoreClient(const KvStoreClientOptions& options)
    : options_(options) {}

KvStoreClient::~KvStoreClient() = default;

absl::StatusOr<std::unique_ptr<KvStoreClient>> KvStoreClient::Create(
    const KvStoreClientOptions& options) {
  TANDEM_RETURN_IF_ERROR(CheckOptions(options));
  std::unique_ptr<KvStoreClient> client(new KvStoreClient(options));
  grpc::ChannelArguments args;
  // A node that comes back is reachable again within about a second.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  for (const std::string& address : options.nodes) {
    auto node = std::make_unique<Node>();
    node->address = address;
    node->same_host = IsLoopbackAddress(address);
    node->channel = grpc::CreateCustomChannel(
        address, grpc::InsecureChannelCredentials(), args);
    node->stub = v1::KvStore::NewStub(node->channel);
    client->node_seeds_.push_back(NodeSeed(address));
    client->nodes_.push_back(std::move(node));
  }
  client->StartSharedMemory();
  return client;
}

void KvStoreClient::StartSharedMemory() {
  const bool any_same_host = std::any_of(
      nodes_.begin(), nodes_.end(),
      [](const std::unique_ptr<Node>& node) { return node->same_host; });
  if (!options_.shared_memory || !any_same_host) return;
  absl::StatusOr<std::unique_ptr<SharedMemoryPool>> pool =
      SharedMemoryPool::Create(options_.max_in_flight,
                               options_.shared_memory_slot_bytes);
  if (!pool.ok()) {
    LOG(WARNING) << "kvstore client streams every get, no shared memory "
                 << "status=" << pool.status();
    return;
  }
  shared_memory_ = std::move(*pool);
}

const std::string& KvStoreClient::NodeFor(const BlockKey& key) const {
  return nodes_[PickNode(node_seeds_, key)]->address;
}

absl::StatusOr<std::vector<std::vector<size_t>>> KvStoreClient::GroupByNode(
    absl::Span<const BlockKey> keys) const {
  std::vector<std::vector<size_t>> groups(nodes_.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    groups[PickNode(node_seeds_, keys[i])].push_back(i);
  }
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (groups[n].size() > kMaxKeysPerCall) {
      return absl::InvalidArgumentError(
          absl::StrCat("more than ", kMaxKeysPerCall, " keys for kvstore node ",
                       nodes_[n]->address));
    }
  }
  return groups;
}

absl::Status KvStoreClient::Put(absl::string_view block) {
  return PutMany({block})[0];
}

std::vector<absl::Status> KvStoreClient::PutMany(
    absl::Span<const absl::string_view> blocks) {
  std::vector<absl::Status> results(blocks.size());
  std::vector<std::unique_ptr<PutCall>> calls;
  CallLimiter limiter(options_.max_in_flight);
  for (size_t i = 0; i < blocks.size(); ++i) {
    absl::StatusOr<BlockInfo> info = DescribeBlock(blocks[i]);
    if (!info.ok()) {
      results[i] = info.status();
      continue;
    }
    Node& node = *nodes_[PickNode(node_seeds_, info->key)];
    limiter.Acquire();
    calls.push_back(std::make_unique<PutCall>(
        CallTarget{node.stub.get(), &node.address,
                   absl::Now() + options_.timeout, &limiter},
        blocks[i], *info, options_.chunk_bytes, &results[i]));
  }
  limiter.WaitForAll();
  return results;
}

absl::StatusOr<std::string> KvStoreClient::Get(const BlockKey& key) {
  return std::move(GetMany({key})[0]);
}

std::vector<absl::StatusOr<std::string>> KvStoreClient::GetMany(
    absl::Span<const BlockKey> keys) {
  StringSink sink(keys.size());
  RunGets(keys, &sink);
  return std::move(sink.results);
}

std::vector<absl::Status> KvStoreClient::GetManyInto(
    absl::Span<const BlockKey> keys, BlockConsumer consume) {
  ConsumerSink sink(keys.size(), consume);
  RunGets(keys, &sink);
  return std::move(sink.results);
}

void KvStoreClient::RunGets(absl::Span<const BlockKey> keys,
                            kvstore_internal::GetSink* sink) {
  std::vector<std::unique_ptr<GetCall>> calls;
  calls.reserve(keys.size());
  CallLimiter limiter(options_.max_in_flight);
  for (size_t i = 0; i < keys.size(); ++i) {
    Node& node = *nodes_[PickNode(node_seeds_, keys[i])];
    limiter.Acquire();
    calls.push_back(std::make_unique<GetCall>(
        CallTarget{node.stub.get(), &node.address,
                   absl::Now() + options_.timeout, &limiter},
        keys[i], options_.max_block_bytes,
        node.same_host ? shared_memory_.get() : nullptr, sink, i));
  }
  limiter.WaitForAll();
}

absl::StatusOr<std::vector<bool>> KvStoreClient::Exists(
    absl::Span<const BlockKey> keys) {
  TANDEM_ASSIGN_OR_RETURN(const std::vector<std::vector<size_t>> groups,
                          GroupByNode(keys));
  std::vector<std::unique_ptr<ExistsCall>> calls(nodes_.size());
  CallLimiter limiter(options_.max_in_flight);
  const absl::Time deadline = absl::Now() + options_.timeout;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (groups[n].empty()) continue;
    calls[n] = std::make_unique<ExistsCall>();
    for (size_t i : groups[n]) ToProto(keys[i], calls[n]->request.add_keys());
    StartUnary(calls[n].get(), deadline, &limiter, [&](auto... args) {
      nodes_[n]->stub->async()->Exists(args...);
    });
  }
  limiter.WaitForAll();
  std::vector<bool> present(keys.size());
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (calls[n] == nullptr) continue;
    TANDEM_RETURN_IF_ERROR(FromNode(nodes_[n]->address, calls[n]->status));
    absl::StatusOr<std::vector<bool>> node_present =
        DecodePresenceBitmap(calls[n]->response.present(), groups[n].size());
    if (!node_present.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("kvstore node ", nodes_[n]->address, " sent a bad ",
                       node_present.status().message()));
    }
    for (size_t j = 0; j < groups[n].size(); ++j) {
      present[groups[n][j]] = (*node_present)[j];
    }
  }
  return present;
}

absl::StatusOr<size_t> KvStoreClient::LongestPrefix(
    absl::Span<const BlockKey> chain) {
  TANDEM_ASSIGN_OR_RETURN(const std::vector<bool> present, Exists(chain));
  return static_cast<size_t>(std::find(present.begin(), present.end(), false) -
                             present.begin());
}

absl::StatusOr<uint64_t> KvStoreClient::Remove(
    absl::Span<const BlockKey> keys) {
  TANDEM_ASSIGN_OR_RETURN(const std::vector<std::vector<size_t>> groups,
                          GroupByNode(keys));
  std::vector<std::unique_ptr<RemoveCall>> calls(nodes_.size());
  CallLimiter limiter(options_.max_in_flight);
  const absl::Time deadline = absl::Now() + options_.timeout;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (groups[n].empty()) continue;
    calls[n] = std::make_unique<RemoveCall>();
    for (size_t i : groups[n]) ToProto(keys[i], calls[n]->request.add_keys());
    StartUnary(calls[n].get(), deadline, &limiter, [&](auto... args) {
      nodes_[n]->stub->async()->Remove(args...);
    });
  }
  limiter.WaitForAll();
  uint64_t removed = 0;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    if (calls[n] == nullptr) continue;
    TANDEM_RETURN_IF_ERROR(FromNode(nodes_[n]->address, calls[n]->status));
    removed += calls[n]->response.removed();
  }
  return removed;
}

absl::StatusOr<std::vector<KvStoreNodeStats>> KvStoreClient::Stats() {
  std::vector<std::unique_ptr<StatsCall>> calls(nodes_.size());
  CallLimiter limiter(options_.max_in_flight);
  const absl::Time deadline = absl::Now() + options_.timeout;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    calls[n] = std::make_unique<StatsCall>();
    StartUnary(calls[n].get(), deadline, &limiter,
               [&](auto... args) { nodes_[n]->stub->async()->Stats(args...); });
  }
  limiter.WaitForAll();
  std::vector<KvStoreNodeStats> stats;
  for (size_t n = 0; n < nodes_.size(); ++n) {
    TANDEM_RETURN_IF_ERROR(FromNode(nodes_[n]->address, calls[n]->status));
    stats.push_back(KvStoreNodeStats{
        .address = nodes_[n]->address,
        .stats = FromProto(calls[n]->response),
        .shared_memory_gets = calls[n]->response.shared_memory_gets()});
  }
  return stats;
}

}  // namespace tandem
