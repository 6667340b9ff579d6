#include "tools/bits_per_byte.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "engine/paged_kv_cache.h"
#include "engine/status_macros.h"

namespace tandem {
namespace {

constexpr int kBlockSize = 16;
constexpr int kMaxWindowsPerBatch = 64;

// Tokens [start, end) of one document are fed; tokens first_target..end of
// it are predicted, token t from the logits of position t - 1.
struct Window {
  int doc;
  int start;
  int end;
  int first_target;
  int num_targets() const { return end - first_target + 1; }
};

struct Encoded {
  std::vector<std::vector<int32_t>> docs;
  int64_t bytes = 0;
  int64_t eos_tokens = 0;
};

absl::StatusOr<Encoded> EncodeDocuments(
    const ModelConfig& config, const Tokenizer& tokenizer,
    absl::Span<const std::string> documents) {
  int32_t bos = config.bos_token_id;
  if (bos < 0) bos = tokenizer.bos_id().value_or(-1);
  int32_t eos = config.eos_token_ids.empty() ? -1 : config.eos_token_ids[0];
  if (eos < 0 && !tokenizer.eos_ids().empty()) eos = tokenizer.eos_ids()[0];
  Encoded out;
  for (size_t i = 0; i < documents.size(); ++i) {
    absl::StatusOr<std::vector<int32_t>> ids =
        tokenizer.Encode(documents[i], /*add_special_tokens=*/false);
    if (!ids.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("document ", i, ": ", ids.status().message()));
    }
    std::vector<int32_t> doc;
    if (bos >= 0) doc.push_back(bos);
    doc.insert(doc.end(), ids->begin(), ids->end());
    if (eos >= 0) {
      doc.push_back(eos);
      ++out.eos_tokens;
    }
    out.bytes += documents[i].size();
    out.docs.push_back(std::move(doc));
  }
  if (out.bytes + out.eos_tokens == 0) {
    return absl::InvalidArgumentError("nothing to score: the text is empty");
  }
  return out;
}

// The windows of one document of `n` tokens, in order.
void AddWindows(int doc, int n, int context, int stride,
                std::vector<Window>* out) {
  int predicted = 0;  // tokens 1..predicted are covered
  for (int start = 0; predicted < n - 1; start += stride) {
    const int end = std::min(start + context, n - 1);
    out->push_back(Window{doc, start, end, std::max(predicted, start) + 1});
    predicted = end;
  }
}

// -log2 softmax(row)[target], in double.
double Bits(const float* row, int vocab, int32_t target) {
  const float max = *std::max_element(row, row + vocab);
  double sum = 0.0;
  for (int i = 0; i < vocab; ++i) sum += std::exp(double{row[i]} - max);
  return (std::log(sum) + max - row[target]) / std::log(2.0);
}

class BatchScorer {
 public:
  BatchScorer(Model& model, std::unique_ptr<PagedKvCache> cache)
      : model_(model), cache_(std::move(cache)) {}

  // Scores windows [begin, end) in one prefill, adding to `result`.
  absl::Status Score(const Encoded& encoded, absl::Span<const Window> batch,
                     ScoreResult* result) {
    std::vector<Model::Chunk> chunks;
    for (size_t i = 0; i < batch.size(); ++i) {
      const Window& w = batch[i];
      TANDEM_RETURN_IF_ERROR(cache_->AddSequence(i));
      TANDEM_RETURN_IF_ERROR(cache_->Append(i, w.end - w.start));
      chunks.push_back(Model::Chunk{static_cast<SequenceId>(i),
                                    absl::MakeConstSpan(encoded.docs[w.doc])
                                        .subspan(w.start, w.end - w.start)});
    }
    absl::Status status =
        model_.Prefill(chunks, *cache_, Model::Logits::kAllPositions, &logits_);
    for (size_t i = 0; i < batch.size(); ++i) {
      TANDEM_RETURN_IF_ERROR(cache_->RemoveSequence(i));
    }
    TANDEM_RETURN_IF_ERROR(status);
    const int vocab = model_.config().vocab_size;
    size_t row = 0;  // first logits row of the current window
    for (const Window& w : batch) {
      const std::vector<int32_t>& doc = encoded.docs[w.doc];
      for (int t = w.first_target; t <= w.end; ++t) {
        const float* logits = &logits_[(row + t - 1 - w.start) * vocab];
        result->total_bits += Bits(logits, vocab, doc[t]);
      }
      result->predicted_tokens += w.num_targets();
      row += w.end - w.start;
    }
    result->windows += batch.size();
    return absl::OkStatus();
  }

 private:
  Model& model_;
  std::unique_ptr<PagedKvCache> cache_;
  std::vector<float> logits_;  // [batch tokens, vocab]
};

}  // namespace

absl::StatusOr<ScoreResult> ScoreDocuments(
    Model& model, const Tokenizer& tokenizer,
    absl::Span<const std::string> documents, const ScoreOptions& options,
    ScoreProgress progress) {
  const int context = model.config().max_position_embeddings;
  if (options.stride < 0 || options.stride > context) {
    return absl::InvalidArgumentError(
        absl::StrCat("stride must be in [0, ", context, "] (the context), got ",
                     options.stride));
  }
  const int stride =
      options.stride == 0 ? std::max(1, context / 2) : options.stride;
  const int batch_tokens = std::max(context, options.max_batch_tokens);
  TANDEM_ASSIGN_OR_RETURN(
      Encoded encoded, EncodeDocuments(model.config(), tokenizer, documents));

  std::vector<Window> windows;
  int64_t total = 0;
  for (size_t d = 0; d < encoded.docs.size(); ++d) {
    AddWindows(d, encoded.docs[d].size(), context, stride, &windows);
  }
  for (const Window& w : windows) total += w.num_targets();

  const KvLayout layout = model.kv_layout(kBlockSize);
  const size_t blocks = batch_tokens / kBlockSize + kMaxWindowsPerBatch + 1;
  TANDEM_ASSIGN_OR_RETURN(
      auto cache, PagedKvCache::Create(
                      layout, PagedKvCache::BlockStrideBytes(layout) * blocks));
  BatchScorer scorer(model, std::move(cache));
  ScoreResult result;
  result.documents = documents.size();
  result.bytes = encoded.bytes;
  result.eos_tokens = encoded.eos_tokens;
  for (size_t begin = 0; begin < windows.size();) {
    size_t end = begin;
    int tokens = 0;
    while (end < windows.size() && end - begin < kMaxWindowsPerBatch &&
           (end == begin ||
            tokens + windows[end].end - windows[end].start <= batch_tokens)) {
      tokens += windows[end].end - windows[end].start;
      ++end;
    }
    TANDEM_RETURN_IF_ERROR(scorer.Score(
        encoded, absl::MakeConstSpan(windows).subspan(begin, end - begin),
        &result));
    progress(result.predicted_tokens, total);
    begin = end;
  }
  return result;
}

std::vector<std::string> SplitFortunes(std::string_view text) {
  std::vector<std::string> docs;
  std::string current;
  bool first_line = true;
  auto finish = [&] {
    std::string_view doc = current;
    while (!doc.empty() && doc.front() == '\n') doc.remove_prefix(1);
    while (!doc.empty() && doc.back() == '\n') doc.remove_suffix(1);
    const bool blank = std::all_of(doc.begin(), doc.end(), [](char c) {
      return absl::ascii_isspace(static_cast<unsigned char>(c));
    });
    if (!blank) docs.emplace_back(doc);
    current.clear();
    first_line = true;
  };
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(text.data(), text.size()), '\n')) {
    if (line == "%") {
      finish();
      continue;
    }
    if (!first_line) current.push_back('\n');
    current.append(line.data(), line.size());
    first_line = false;
  }
  finish();
  return docs;
}

}  // namespace tandem
