// The KV store as a cluster of real `kvstore` processes on loopback ports:
// blocks above gRPC's default message size, prefix queries over a chain
// spread across nodes, same-host Gets through shared memory, eviction,
// checksum rejection, a node killed mid-run, health checking and
// reflection.
#include <signal.h>
#include <sys/wait.h>

#include <memory>
#include <string>
#include <vector>

#include "engine/block_key.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvstore/kvstore_client.h"
#include "kvstore/kvstore_proto.h"
#include "kvstore/test_blocks.h"
#include "proto/kvstore.grpc.pb.h"
#include "tests/child_process.h"
#include "tests/grpc_probe.h"

namespace tandem {
namespace {

using ::tandem::testing::ChildProcess;
using ::tandem::testing::MakeTestBlock;
using ::tandem::testing::SmallBlock;
using ::tandem::testing::SmallLayout;
using ::tandem::testing::TestKey;
using ::testing::Contains;
using ::testing::HasSubstr;

std::unique_ptr<ChildProcess> StartNode(std::vector<std::string> args) {
  args.push_back("--listen=127.0.0.1:0");
  absl::StatusOr<std::unique_ptr<ChildProcess>> node =
      ChildProcess::StartServer(TANDEM_KVSTORE_BINARY, args);
  EXPECT_TRUE(node.ok()) << node.status();
  return node.ok() ? std::move(*node) : nullptr;
}

std::unique_ptr<KvStoreClient> ClientOf(
    const std::vector<const ChildProcess*>& nodes) {
  KvStoreClientOptions options;
  for (const ChildProcess* node : nodes) {
    options.nodes.push_back(node->address());
  }
  options.timeout = absl::Seconds(10);
  return KvStoreClient::Create(options).value();
}

class KvStoreClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (auto* node : {&node_a_, &node_b_}) {
      *node = StartNode({"--memory_budget=256MiB", "--max_block_bytes=16MiB"});
      ASSERT_NE(*node, nullptr);
    }
    client_ = ClientOf({node_a_.get(), node_b_.get()});
  }

  // The first test key, from `from` on, that the client places on `node`.
  uint64_t KeyOn(const ChildProcess& node, uint64_t from = 0) {
    uint64_t i = from;
    while (client_->NodeFor(TestKey(i)) != node.address()) ++i;
    return i;
  }

  std::unique_ptr<ChildProcess> node_a_;
  std::unique_ptr<ChildProcess> node_b_;
  std::unique_ptr<KvStoreClient> client_;
};

TEST_F(KvStoreClusterTest, BlocksLargerThanTheGrpcMessageLimitRoundTrip) {
  // 256 tokens of the benchmark model's shape: 6 MiB plus the header.
  const KvLayout layout{
      .num_layers = 12, .num_kv_heads = 4, .head_dim = 64, .block_size = 256};
  std::vector<std::string> blocks;
  for (uint64_t i : {KeyOn(*node_a_), KeyOn(*node_b_)}) {
    blocks.push_back(MakeTestBlock(layout, TestKey(i), i));
  }
  ASSERT_GT(blocks[0].size(), 4u << 20);
  for (const std::string& block : blocks) {
    ASSERT_TRUE(client_->Put(block).ok());
  }
  for (const std::string& block : blocks) {
    absl::StatusOr<std::string> got = client_->Get(DescribeBlock(block)->key);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_TRUE(*got == block);
  }
}

TEST_F(KvStoreClusterTest, LongestPrefixFollowsTheChainAcrossNodes) {
  std::vector<int32_t> tokens(32);
  for (int i = 0; i < 32; ++i) tokens[i] = 100 + i;
  const std::vector<BlockKey> chain =
      ComputeKeyChain(testing::TestModel(), tokens, 4);
  ASSERT_EQ(chain.size(), 8u);
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_TRUE(client_->Put(MakeTestBlock(SmallLayout(), chain[i], i)).ok());
  }
  EXPECT_EQ(client_->LongestPrefix(chain).value(), 5u);
  EXPECT_EQ(client_->Remove({chain[2]}).value(), 1u);
  EXPECT_EQ(client_->LongestPrefix(chain).value(), 2u);
  EXPECT_THAT(client_->Exists(chain).value(),
              ::testing::ElementsAre(true, true, false, true, true, false,
                                     false, false));
}

TEST_F(KvStoreClusterTest, RendezvousHashingPutsKeysOnBothNodes) {
  std::vector<std::string> blocks;
  for (uint64_t i = 0; i < 32; ++i) blocks.push_back(SmallBlock(i));
  const std::vector<absl::string_view> views(blocks.begin(), blocks.end());
  for (const absl::Status& status : client_->PutMany(views)) {
    ASSERT_TRUE(status.ok()) << status;
  }
  const std::vector<KvStoreNodeStats> stats = client_->Stats().value();
  ASSERT_EQ(stats.size(), 2u);
  EXPECT_GT(stats[0].stats.puts, 0u);
  EXPECT_GT(stats[1].stats.puts, 0u);
  EXPECT_EQ(stats[0].stats.puts + stats[1].stats.puts, 32u);
  // Each block sits on the node the hash names, and only there.
  std::unique_ptr<KvStoreClient> only_a = ClientOf({node_a_.get()});
  for (uint64_t i = 0; i < 32; ++i) {
    const bool on_a = client_->NodeFor(TestKey(i)) == node_a_->address();
    EXPECT_EQ(only_a->Exists({TestKey(i)}).value()[0], on_a) << i;
  }
}

TEST_F(KvStoreClusterTest, SameHostGetsReachTheClientThroughSharedMemory) {
  const uint64_t on_a = KeyOn(*node_a_);
  ASSERT_TRUE(client_->Put(SmallBlock(on_a)).ok());
  EXPECT_EQ(client_->Get(TestKey(on_a)).value(), SmallBlock(on_a));
  const std::vector<KvStoreNodeStats> stats = client_->Stats().value();
  EXPECT_EQ(stats[0].shared_memory_gets, 1u);
  EXPECT_EQ(stats[1].shared_memory_gets, 0u);
}

TEST_F(KvStoreClusterTest, CorruptedBlocksAreRejectedWithDataLoss) {
  std::string corrupted = SmallBlock(1);
  corrupted[corrupted.size() - 5] ^= 0x10;  // a payload byte
  EXPECT_EQ(client_->Put(corrupted).code(), absl::StatusCode::kDataLoss);

  // The transfer checksum itself disagreeing with the bytes.
  const std::string block = SmallBlock(2);
  auto stub = v1::KvStore::NewStub(grpc::CreateChannel(
      client_->NodeFor(TestKey(2)), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  v1::PutResponse response;
  auto writer = stub->Put(&context, &response);
  v1::PutRequest message;
  BlockInfo info = DescribeBlock(block).value();
  info.checksum ^= 0xff;
  ToProto(info, message.mutable_info());
  message.set_data(block);
  writer->Write(message);
  writer->WritesDone();
  EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(client_->Exists({TestKey(1), TestKey(2)}).value(),
              ::testing::ElementsAre(false, false));
}

TEST_F(KvStoreClusterTest, KilledNodeIsUnavailablePromptlyNamingItsAddress) {
  const uint64_t on_a = KeyOn(*node_a_);
  const uint64_t on_b = KeyOn(*node_b_);
  ASSERT_TRUE(client_->Put(SmallBlock(on_a)).ok());
  ASSERT_TRUE(client_->Put(SmallBlock(on_b)).ok());
  const std::string address_b = node_b_->address();
  ASSERT_TRUE(node_b_->Stop(SIGKILL).ok());

  const absl::Time start = absl::Now();
  absl::StatusOr<std::string> got = client_->Get(TestKey(on_b));
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));  // well before the 10 s
  EXPECT_EQ(got.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(got.status().message(), HasSubstr(address_b));
  EXPECT_EQ(
      client_->LongestPrefix({TestKey(on_a), TestKey(on_b)}).status().code(),
      absl::StatusCode::kUnavailable);
  // The other node still serves its share.
  EXPECT_TRUE(client_->Get(TestKey(on_a)).ok());
}

TEST_F(KvStoreClusterTest, NodesReportServingHealthAndReflection) {
  for (const ChildProcess* node : {node_a_.get(), node_b_.get()}) {
    EXPECT_EQ(
        testing::CheckHealth(node->address(), "", absl::Seconds(5)).value(),
        testing::ServingStatus::kServing);
    EXPECT_EQ(testing::CheckHealth(node->address(), "tandem.v1.KvStore",
                                   absl::Seconds(5))
                  .value(),
              testing::ServingStatus::kServing);
    const std::vector<std::string> services =
        testing::ListServices(node->address(), absl::Seconds(5)).value();
    EXPECT_THAT(services, Contains("tandem.v1.KvStore"));
    EXPECT_THAT(services, Contains("grpc.health.v1.Health"));
  }
}

TEST_F(KvStoreClusterTest, SigtermStopsANodeCleanly) {
  absl::StatusOr<int> status = node_a_->Stop(SIGTERM);
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST(KvStoreEvictionTest, SmallBudgetEvictsLeastRecentlyUsedBlocks) {
  // 1 KiB holds two 352-byte test blocks.
  std::unique_ptr<ChildProcess> node = StartNode({"--memory_budget=1KiB"});
  ASSERT_NE(node, nullptr);
  std::unique_ptr<KvStoreClient> client = ClientOf({node.get()});
  ASSERT_TRUE(client->Put(SmallBlock(1)).ok());
  ASSERT_TRUE(client->Put(SmallBlock(2)).ok());
  ASSERT_TRUE(client->Get(TestKey(1)).ok());  // block 2 is now the oldest
  ASSERT_TRUE(client->Put(SmallBlock(3)).ok());
  EXPECT_THAT(client->Exists({TestKey(1), TestKey(2), TestKey(3)}).value(),
              ::testing::ElementsAre(true, false, true));
  ASSERT_TRUE(client->Put(SmallBlock(4)).ok());
  EXPECT_THAT(client->Exists({TestKey(1), TestKey(3), TestKey(4)}).value(),
              ::testing::ElementsAre(false, true, true));
  const KvStoreNodeStats stats = client->Stats().value()[0];
  EXPECT_EQ(stats.stats.evictions, 2u);
  EXPECT_EQ(stats.stats.blocks_stored, 2u);
  EXPECT_LE(stats.stats.bytes_used, 1024u);
}

TEST(KvStoreEvictionTest, BlockAboveTheBudgetIsResourceExhausted) {
  std::unique_ptr<ChildProcess> node = StartNode({"--memory_budget=300"});
  ASSERT_NE(node, nullptr);
  std::unique_ptr<KvStoreClient> client = ClientOf({node.get()});
  EXPECT_EQ(client->Put(SmallBlock(1)).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST(KvStoreBinaryTest, BadFlagExitsWithAnError) {
  absl::StatusOr<std::unique_ptr<ChildProcess>> node =
      ChildProcess::StartServer(TANDEM_KVSTORE_BINARY,
                                {"--memory_budget=12parsecs"});
  EXPECT_EQ(node.status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace tandem
