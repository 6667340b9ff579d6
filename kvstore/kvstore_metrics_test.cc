#include "kvstore/kvstore_metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/metrics.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

TEST(KvStoreMetricsTest, RefreshSetsGaugesAndAdvancesEvictionsOnce) {
  prometheus::Registry registry;
  KvStoreMetrics metrics(registry);
  BlockStoreStats stats;
  stats.bytes_stored = 4096;
  stats.blocks_stored = 2;
  stats.memory_budget_bytes = 1 << 20;
  stats.evictions = 3;
  metrics.Refresh(stats);
  metrics.Refresh(stats);  // the same figures again add nothing
  stats.evictions = 5;
  metrics.Refresh(stats);
  stats.evictions = 4;  // an older snapshot never moves the counter back
  metrics.Refresh(stats);
  const std::string text = MetricsText(registry);
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_bytes_stored 4096\n"));
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_blocks_stored 2\n"));
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_memory_budget_bytes 1048576\n"));
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_evictions_total 5\n"));
}

TEST(KvStoreMetricsTest, CountsBytesByDirectionAndPath) {
  prometheus::Registry registry;
  KvStoreMetrics metrics(registry);
  metrics.RecordPut(100, absl::Milliseconds(1));
  metrics.RecordPut(0, absl::Milliseconds(1));  // already stored
  metrics.RecordGet(30, /*shared_memory=*/false, absl::Milliseconds(2));
  metrics.RecordGet(70, /*shared_memory=*/true, absl::Milliseconds(2));
  metrics.RecordExists();
  const std::string text = MetricsText(registry);
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_bytes_in_total 100\n"));
  EXPECT_THAT(
      text, HasSubstr("tandem_kvstore_bytes_out_total{path=\"stream\"} 30\n"));
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_bytes_out_total{path=\"shared_"
                              "memory\"} 70\n"));
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_calls_total{rpc=\"put\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("tandem_kvstore_calls_total{rpc=\"exists\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("tandem_kvstore_calls_total{rpc=\"remove\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("tandem_kvstore_transfer_seconds_count{rpc="
                              "\"get\"} 2\n"));
}

}  // namespace
}  // namespace tandem
