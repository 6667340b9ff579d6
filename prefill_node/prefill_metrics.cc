#include "prefill_node/prefill_metrics.h"

#include "prometheus/family.h"
#include "service/metrics.h"

namespace tandem {
namespace {

prometheus::Family<prometheus::Counter>& LookupFamily(
    prometheus::Registry& registry) {
  return prometheus::BuildCounter()
      .Name("tandem_prefill_prefix_lookups_total")
      .Help(
          "Prompts that asked the store for their prefix, by whether at "
          "least one stored block was usable")
      .Register(registry);
}

}  // namespace

PrefillMetrics::PrefillMetrics(prometheus::Registry& registry)
    : queued_requests_(
          AddGauge(registry, "tandem_prefill_queued_requests",
                   "Requests accepted and not yet answered a first token")),
      queued_tokens_(AddGauge(registry, "tandem_prefill_queued_tokens",
                              "Prompt tokens of queued requests still to "
                              "compute")),
      used_blocks_(AddGauge(registry, "tandem_prefill_kv_blocks_used",
                            "KV cache blocks in use")),
      free_blocks_(AddGauge(registry, "tandem_prefill_kv_blocks_free",
                            "KV cache blocks free")),
      step_tokens_(AddHistogram(registry, "tandem_prefill_batch_tokens",
                                "Prompt tokens computed per forward pass",
                                CountBuckets())),
      step_seconds_(AddHistogram(registry, "tandem_prefill_step_seconds",
                                 "Duration of each scheduler step that "
                                 "computed tokens",
                                 StepBuckets())),
      queue_seconds_(AddHistogram(registry, "tandem_prefill_queue_time_seconds",
                                  "From acceptance until the prompt's first "
                                  "chunk was computed",
                                  LatencyBuckets())),
      cached_tokens_(AddCounter(registry, "tandem_prefill_cached_tokens_total",
                                "Prompt tokens whose KV came from the store")),
      computed_tokens_(AddCounter(registry,
                                  "tandem_prefill_computed_tokens_total",
                                  "Prompt tokens computed here")),
      lookup_hits_(LookupFamily(registry).Add({{"result", "hit"}})),
      lookup_misses_(LookupFamily(registry).Add({{"result", "miss"}})),
      published_blocks_(AddCounter(registry,
                                   "tandem_prefill_published_blocks_total",
                                   "KV blocks written to the store")) {}

void PrefillMetrics::RecordStep(int tokens, absl::Duration elapsed) {
  step_tokens_.Observe(tokens);
  step_seconds_.Observe(absl::ToDoubleSeconds(elapsed));
}

void PrefillMetrics::SetLoad(int queued_requests, int64_t queued_tokens,
                             int free_blocks, int total_blocks) {
  queued_requests_.Set(queued_requests);
  queued_tokens_.Set(queued_tokens);
  used_blocks_.Set(total_blocks - free_blocks);
  free_blocks_.Set(free_blocks);
}

void PrefillMetrics::RecordLookup(bool hit) {
  (hit ? lookup_hits_ : lookup_misses_).Increment();
}

void PrefillMetrics::RecordPrompt(int cached_tokens, int computed_tokens,
                                  absl::Duration queue_time) {
  cached_tokens_.Increment(cached_tokens);
  computed_tokens_.Increment(computed_tokens);
  queue_seconds_.Observe(absl::ToDoubleSeconds(queue_time));
}

void PrefillMetrics::RecordPublished(int blocks) {
  published_blocks_.Increment(blocks);
}

}  // namespace tandem
