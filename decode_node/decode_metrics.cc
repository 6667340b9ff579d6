#include "decode_node/decode_metrics.h"

#include "service/metrics.h"

namespace tandem {

DecodeMetrics::DecodeMetrics(prometheus::Registry& registry)
    : running_(AddGauge(registry, "tandem_decode_running_sequences",
                        "Sequences in the batch")),
      waiting_(AddGauge(registry, "tandem_decode_waiting_sequences",
                        "Sequences accepted and not running (queued or "
                        "fetching their blocks)")),
      used_blocks_(AddGauge(registry, "tandem_decode_kv_blocks_used",
                            "KV cache blocks in use or reserved")),
      free_blocks_(AddGauge(registry, "tandem_decode_kv_blocks_free",
                            "KV cache blocks free")),
      batch_size_(AddHistogram(registry, "tandem_decode_batch_size",
                               "Sequences per decode step", CountBuckets())),
      step_seconds_(AddHistogram(registry, "tandem_decode_step_seconds",
                                 "Duration of each decode step (forward pass "
                                 "and sampling)",
                                 StepBuckets())),
      generated_tokens_(AddCounter(registry,
                                   "tandem_decode_generated_tokens_total",
                                   "Tokens streamed, the prefill's first "
                                   "token of each sequence included")),
      finished_(prometheus::BuildCounter()
                    .Name("tandem_decode_sequences_finished_total")
                    .Help("Sequences that left the worker, by reason")
                    .Register(registry)),
      preemptions_(AddCounter(registry, "tandem_decode_preemptions_total",
                              "Sequences evicted from the batch for memory")),
      fetched_blocks_(AddCounter(registry, "tandem_decode_fetched_blocks_total",
                                 "Handoff blocks read from the KV store")),
      fetch_seconds_(AddHistogram(registry, "tandem_decode_fetch_seconds",
                                  "Duration of each read of a sequence's "
                                  "handoff blocks",
                                  StepBuckets())) {
  for (const char* reason : {"stop", "length", "cancelled", "error"}) {
    finished_.Add({{"reason", reason}});
  }
}

void DecodeMetrics::RecordStep(int batch, absl::Duration elapsed) {
  batch_size_.Observe(batch);
  step_seconds_.Observe(absl::ToDoubleSeconds(elapsed));
  generated_tokens_.Increment(batch);
}

void DecodeMetrics::RecordTokens(int tokens) {
  generated_tokens_.Increment(tokens);
}

void DecodeMetrics::RecordFinished(const std::string& reason) {
  finished_.Add({{"reason", reason}}).Increment();
}

void DecodeMetrics::RecordLoad(int running, int waiting, int free_blocks,
                               int total_blocks, int64_t preemptions) {
  running_.Set(running);
  waiting_.Set(waiting);
  used_blocks_.Set(total_blocks - free_blocks);
  free_blocks_.Set(free_blocks);
  if (preemptions > preemptions_seen_) {
    preemptions_.Increment(preemptions - preemptions_seen_);
    preemptions_seen_ = preemptions;
  }
}

void DecodeMetrics::RecordFetch(int blocks, absl::Duration elapsed) {
  fetched_blocks_.Increment(blocks);
  fetch_seconds_.Observe(absl::ToDoubleSeconds(elapsed));
}

}  // namespace tandem
