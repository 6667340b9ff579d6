// The KvStore service and client against an in-process node on a loopback
// port: the wire protocol, its refusals and the client's checks.
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "kvstore/kvstore_client.h"
#include "kvstore/kvstore_proto.h"
#include "kvstore/kvstore_server.h"
#include "kvstore/test_blocks.h"
#include "proto/kvstore.grpc.pb.h"

namespace tandem {
namespace {

using ::tandem::testing::MakeTestBlock;
using ::tandem::testing::SmallBlock;
using ::tandem::testing::SmallLayout;
using ::tandem::testing::TestKey;
using ::testing::HasSubstr;

class KvStoreServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    KvStoreServerOptions options;
    options.listen = "127.0.0.1:0";
    options.memory_budget_bytes = 1 << 20;
    options.chunk_bytes = 100;  // several messages even for small blocks
    absl::StatusOr<std::unique_ptr<KvStoreServer>> server =
        KvStoreServer::Start(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    KvStoreClientOptions client_options;
    client_options.nodes = {server_->address()};
    client_options.chunk_bytes = 64;
    client_options.timeout = absl::Seconds(5);
    client_options.shared_memory = false;  // every Get streams
    client_ = KvStoreClient::Create(client_options).value();
    stub_ = v1::KvStore::NewStub(grpc::CreateChannel(
        server_->address(), grpc::InsecureChannelCredentials()));
  }

  // Sends `messages` as one Put stream on the raw stub.
  grpc::Status RawPut(const std::vector<v1::PutRequest>& messages) {
    grpc::ClientContext context;
    v1::PutResponse response;
    auto writer = stub_->Put(&context, &response);
    for (const v1::PutRequest& message : messages) {
      if (!writer->Write(message)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  static v1::PutRequest InfoMessage(const std::string& block) {
    v1::PutRequest message;
    ToProto(DescribeBlock(block).value(), message.mutable_info());
    return message;
  }

  static v1::PutRequest DataMessage(absl::string_view data) {
    v1::PutRequest message;
    message.set_data(std::string(data));
    return message;
  }

  BlockStoreStats NodeStats() { return server_->store().Stats(); }

  // Polls `condition` until it holds or 5 s pass; true if it held.
  template <typename Condition>
  static bool WaitFor(Condition condition) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (!condition()) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(2));
    }
    return true;
  }

  std::unique_ptr<KvStoreServer> server_;
  std::unique_ptr<KvStoreClient> client_;
  std::unique_ptr<v1::KvStore::Stub> stub_;
};

TEST_F(KvStoreServiceTest, PutThenGetReturnsTheSameBytesOverManyMessages) {
  const std::string block = SmallBlock(1);
  ASSERT_TRUE(client_->Put(block).ok());
  absl::StatusOr<std::string> got = client_->Get(TestKey(1));
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(*got, block);
}

TEST_F(KvStoreServiceTest, DuplicatePutSucceedsWithoutRewriting) {
  const std::string block = SmallBlock(1);
  ASSERT_TRUE(client_->Put(block).ok());
  ASSERT_TRUE(client_->Put(block).ok());
  const BlockStoreStats stats = NodeStats();
  EXPECT_EQ(stats.puts, 1u);
  EXPECT_EQ(stats.duplicate_puts, 1u);

  grpc::ClientContext context;
  v1::PutResponse response;
  auto writer = stub_->Put(&context, &response);
  writer->Write(InfoMessage(block));
  writer->WritesDone();
  ASSERT_TRUE(writer->Finish().ok());
  EXPECT_TRUE(response.already_present());
}

TEST_F(KvStoreServiceTest, GetOfMissingBlockIsNotFoundNamingTheNode) {
  absl::StatusOr<std::string> got = client_->Get(TestKey(9));
  EXPECT_EQ(got.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(got.status().message(), HasSubstr(server_->address()));
}

TEST_F(KvStoreServiceTest, ClientRefusesBytesThatAreNotAKeyedBlock) {
  EXPECT_EQ(client_->Put("not a block").code(),
            absl::StatusCode::kDataLoss);  // shorter than a header
  // A partial block handed from prefill to decode carries no key.
  const std::vector<float> floats(SmallLayout().BlockFloats(), 1.0f);
  BlockMetadata metadata;
  metadata.model = testing::TestModel();
  metadata.token_count = 2;
  const std::string unkeyed =
      ExportBlock(SmallLayout(), floats.data(), metadata).value();
  EXPECT_EQ(client_->Put(unkeyed).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(NodeStats().failed_puts, 0u);  // refused before any rpc
}

TEST_F(KvStoreServiceTest, PutWithoutInfoIsInvalidArgument) {
  EXPECT_EQ(RawPut({DataMessage("abc")}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(RawPut({}).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(KvStoreServiceTest, InfoInALaterMessageIsInvalidArgument) {
  const std::string block = SmallBlock(1);
  v1::PutRequest first = InfoMessage(block);
  first.set_data(block.substr(0, 10));
  v1::PutRequest second = InfoMessage(block);
  EXPECT_EQ(RawPut({first, second}).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(NodeStats().bytes_used, 0u);
}

TEST_F(KvStoreServiceTest, PutWithWrongChecksumIsDataLossAndStoresNothing) {
  const std::string block = SmallBlock(1);
  v1::PutRequest first = InfoMessage(block);
  first.mutable_info()->set_checksum(first.info().checksum() + 1);
  EXPECT_EQ(RawPut({first, DataMessage(block)}).error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_FALSE(client_->Exists({TestKey(1)}).value()[0]);
}

TEST_F(KvStoreServiceTest, PutEndingEarlyIsDataLoss) {
  const std::string block = SmallBlock(1);
  EXPECT_EQ(RawPut({InfoMessage(block), DataMessage(block.substr(0, 100))})
                .error_code(),
            grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(NodeStats().bytes_used, 0u);
}

TEST_F(KvStoreServiceTest, CancelledPutLeavesNothingBehind) {
  const std::string block = SmallBlock(1);
  {
    grpc::ClientContext context;
    v1::PutResponse response;
    auto writer = stub_->Put(&context, &response);
    ASSERT_TRUE(writer->Write(InfoMessage(block)));
    ASSERT_TRUE(writer->Write(DataMessage(block.substr(0, 50))));
    // Cancel once the node has started the write (reserved its bytes).
    ASSERT_TRUE(WaitFor([&] { return NodeStats().bytes_used > 0; }));
    context.TryCancel();
    EXPECT_EQ(writer->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  // The node notices the cancellation on its own threads.
  ASSERT_TRUE(WaitFor([&] { return NodeStats().failed_puts > 0; }));
  const BlockStoreStats stats = NodeStats();
  EXPECT_EQ(stats.failed_puts, 1u);
  EXPECT_EQ(stats.bytes_used, 0u);
  EXPECT_EQ(stats.blocks_stored, 0u);
}

TEST_F(KvStoreServiceTest, ExistsAnswersPrefixLengthAndBitmap) {
  for (uint64_t i : {0, 1, 2, 4, 9}) {
    ASSERT_TRUE(client_->Put(SmallBlock(i)).ok());
  }
  v1::ExistsRequest request;
  for (uint64_t i = 0; i < 10; ++i) ToProto(TestKey(i), request.add_keys());
  grpc::ClientContext context;
  v1::ExistsResponse response;
  ASSERT_TRUE(stub_->Exists(&context, request, &response).ok());
  EXPECT_EQ(response.prefix_length(), 3u);
  // Keys 0, 1, 2, 4 in the first byte, key 9 in the second.
  EXPECT_EQ(response.present(), std::string("\x17\x02", 2));

  std::vector<BlockKey> chain;
  for (uint64_t i = 0; i < 10; ++i) chain.push_back(TestKey(i));
  EXPECT_EQ(client_->LongestPrefix(chain).value(), 3u);
  EXPECT_THAT(client_->Exists(chain).value(),
              ::testing::ElementsAre(true, true, true, false, true, false,
                                     false, false, false, true));
}

TEST_F(KvStoreServiceTest, TooManyKeysIsInvalidArgument) {
  v1::ExistsRequest request;
  for (int i = 0; i <= kMaxKeysPerCall; ++i) {
    ToProto(TestKey(i), request.add_keys());
  }
  grpc::ClientContext context;
  v1::ExistsResponse response;
  EXPECT_EQ(stub_->Exists(&context, request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  std::vector<BlockKey> keys(kMaxKeysPerCall + 1, TestKey(1));
  EXPECT_EQ(client_->Exists(keys).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(KvStoreServiceTest, GetWithoutKeyIsInvalidArgument) {
  grpc::ClientContext context;
  auto reader = stub_->Get(&context, v1::GetRequest());
  v1::GetResponse response;
  EXPECT_FALSE(reader->Read(&response));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(KvStoreServiceTest, RemoveCountsTheBlocksItRemoved) {
  ASSERT_TRUE(client_->Put(SmallBlock(1)).ok());
  ASSERT_TRUE(client_->Put(SmallBlock(2)).ok());
  EXPECT_EQ(client_->Remove({TestKey(1), TestKey(3)}).value(), 1u);
  EXPECT_EQ(client_->Get(TestKey(1)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(client_->Get(TestKey(2)).ok());
}

TEST_F(KvStoreServiceTest, StatsReportTheNodeCounters) {
  ASSERT_TRUE(client_->Put(SmallBlock(1)).ok());
  ASSERT_TRUE(client_->Get(TestKey(1)).ok());
  ASSERT_FALSE(client_->Get(TestKey(2)).ok());
  absl::StatusOr<std::vector<KvStoreNodeStats>> stats = client_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_EQ(stats->size(), 1u);
  EXPECT_EQ((*stats)[0].address, server_->address());
  EXPECT_EQ((*stats)[0].stats.puts, 1u);
  EXPECT_EQ((*stats)[0].stats.hits, 1u);
  EXPECT_EQ((*stats)[0].stats.misses, 1u);
  EXPECT_EQ((*stats)[0].stats.bytes_stored, SmallBlock(1).size());
  EXPECT_EQ((*stats)[0].stats.memory_budget_bytes, 1u << 20);
}

TEST_F(KvStoreServiceTest, ManyConcurrentGetsAllReturnTheirBlocks) {
  std::vector<std::string> blocks;
  std::vector<absl::string_view> views;
  std::vector<BlockKey> keys;
  for (uint64_t i = 0; i < 40; ++i) {
    blocks.push_back(MakeTestBlock(SmallLayout(), TestKey(i), i));
  }
  for (uint64_t i = 0; i < 40; ++i) {
    views.push_back(blocks[i]);
    keys.push_back(TestKey(i));
  }
  for (const absl::Status& status : client_->PutMany(views)) {
    ASSERT_TRUE(status.ok()) << status;
  }
  std::vector<absl::StatusOr<std::string>> got = client_->GetMany(keys);
  for (uint64_t i = 0; i < 40; ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    EXPECT_EQ(*got[i], blocks[i]);
  }
}

TEST_F(KvStoreServiceTest, SameHostGetsGoThroughSharedMemory) {
  KvStoreClientOptions options;
  options.nodes = {server_->address()};
  options.shared_memory_slot_bytes = 4096;
  std::unique_ptr<KvStoreClient> client =
      KvStoreClient::Create(options).value();
  std::vector<BlockKey> keys;
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(client->Put(SmallBlock(i)).ok());
    keys.push_back(TestKey(i));
  }
  std::vector<absl::StatusOr<std::string>> got = client->GetMany(keys);
  for (uint64_t i = 0; i < 8; ++i) {
    ASSERT_TRUE(got[i].ok()) << got[i].status();
    EXPECT_EQ(*got[i], SmallBlock(i));
  }
  EXPECT_EQ(client->Stats().value()[0].shared_memory_gets, 8u);
}

TEST_F(KvStoreServiceTest, GetManyIntoHandsEachBlockToTheConsumer) {
  KvStoreClientOptions options;
  options.nodes = {server_->address()};
  std::unique_ptr<KvStoreClient> same_host =
      KvStoreClient::Create(options).value();
  for (uint64_t i = 0; i < 4; ++i)
    ASSERT_TRUE(client_->Put(SmallBlock(i)).ok());
  const std::vector<BlockKey> keys = {TestKey(0), TestKey(1), TestKey(9),
                                      TestKey(3)};
  for (KvStoreClient* client : {client_.get(), same_host.get()}) {
    std::vector<std::string> received(keys.size());
    const std::vector<absl::Status> statuses =
        client->GetManyInto(keys, [&](size_t index, absl::string_view block) {
          received[index] = std::string(block);
          return index == 3 ? absl::InternalError("consumer refused")
                            : absl::OkStatus();
        });
    ASSERT_EQ(statuses.size(), 4u);
    EXPECT_TRUE(statuses[0].ok()) << statuses[0];
    EXPECT_TRUE(statuses[1].ok()) << statuses[1];
    EXPECT_EQ(statuses[2].code(), absl::StatusCode::kNotFound);
    EXPECT_EQ(statuses[3].code(), absl::StatusCode::kInternal);
    EXPECT_EQ(received[0], SmallBlock(0));
    EXPECT_EQ(received[1], SmallBlock(1));
    EXPECT_EQ(received[3], SmallBlock(3));
  }
  // The same-host client read three blocks through shared memory.
  EXPECT_EQ(same_host->Stats().value()[0].shared_memory_gets, 3u);
}

TEST_F(KvStoreServiceTest, BlockLargerThanTheSlotIsStreamed) {
  KvStoreClientOptions options;
  options.nodes = {server_->address()};
  options.shared_memory_slot_bytes = 100;  // a small block is 352 bytes
  std::unique_ptr<KvStoreClient> client =
      KvStoreClient::Create(options).value();
  ASSERT_TRUE(client->Put(SmallBlock(1)).ok());
  EXPECT_EQ(client->Get(TestKey(1)).value(), SmallBlock(1));
  EXPECT_EQ(client->Stats().value()[0].shared_memory_gets, 0u);
}

TEST_F(KvStoreServiceTest, StreamingClientNeverUsesSharedMemory) {
  ASSERT_TRUE(client_->Put(SmallBlock(1)).ok());
  ASSERT_TRUE(client_->Get(TestKey(1)).ok());
  EXPECT_EQ(client_->Stats().value()[0].shared_memory_gets, 0u);
}

TEST(KvStoreClientTest, RejectsBadOptions) {
  KvStoreClientOptions options;
  EXPECT_EQ(KvStoreClient::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.nodes = {"127.0.0.1:1", "127.0.0.1:1"};
  EXPECT_EQ(KvStoreClient::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.nodes = {"127.0.0.1:1"};
  options.timeout = absl::ZeroDuration();
  EXPECT_EQ(KvStoreClient::Create(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(KvStoreServerTest, RejectsBadOptions) {
  KvStoreServerOptions options;
  options.listen = "no-port";
  EXPECT_EQ(KvStoreServer::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.listen = "127.0.0.1:0";
  options.max_block_bytes = 10;
  EXPECT_EQ(KvStoreServer::Start(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace tandem
