#include "decode_node/decode_metrics.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/metrics.h"

namespace tandem {
namespace {

using ::testing::HasSubstr;

TEST(DecodeMetricsTest, LoadSetsGaugesAndCountsNewPreemptionsOnly) {
  prometheus::Registry registry;
  DecodeMetrics metrics(registry);
  metrics.RecordLoad(/*running=*/3, /*waiting=*/1, /*free_blocks=*/90,
                     /*total_blocks=*/100, /*preemptions=*/2);
  metrics.RecordLoad(3, 1, 90, 100, 2);
  metrics.RecordLoad(2, 0, 95, 100, 4);
  const std::string text = MetricsText(registry);
  EXPECT_THAT(text, HasSubstr("tandem_decode_running_sequences 2\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_waiting_sequences 0\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_kv_blocks_used 5\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_kv_blocks_free 95\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_preemptions_total 4\n"));
}

TEST(DecodeMetricsTest, StepsCountOneTokenPerSequence) {
  prometheus::Registry registry;
  DecodeMetrics metrics(registry);
  metrics.RecordTokens(1);  // a first token
  metrics.RecordStep(3, absl::Milliseconds(2));
  metrics.RecordFinished("length");
  const std::string text = MetricsText(registry);
  EXPECT_THAT(text, HasSubstr("tandem_decode_generated_tokens_total 4\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_batch_size_bucket{le=\"2\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_batch_size_bucket{le=\"4\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_sequences_finished_total{reason="
                              "\"length\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("tandem_decode_sequences_finished_total{reason="
                              "\"cancelled\"} 0\n"));
}

}  // namespace
}  // namespace tandem
