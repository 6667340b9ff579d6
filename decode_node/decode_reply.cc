#include "decode_node/decode_reply.h"

#include <string>

#include "engine/stop_conditions.h"

namespace tandem {
namespace {

std::string TokenText(const Tokenizer& tokenizer, int32_t id) {
  if (id < 0 || id >= tokenizer.vocab_size()) return "";
  absl::StatusOr<std::string> text =
      tokenizer.Decode({&id, 1}, /*skip_special_tokens=*/false);
  return text.ok() ? *std::move(text) : "";
}

void SetEntry(const Tokenizer& tokenizer, int32_t id, float logprob,
              v1::TokenLogprob* out) {
  out->set_token_id(id);
  out->set_logprob(logprob);
  out->set_text(TokenText(tokenizer, id));
}

// The prefill's entry, with the texts it does not carry filled in.
v1::Logprobs FirstLogprobs(const v1::Logprobs& given, int32_t token,
                           const Tokenizer& tokenizer) {
  v1::Logprobs out = given;
  out.mutable_chosen()->set_token_id(token);
  if (out.chosen().text().empty()) {
    out.mutable_chosen()->set_text(TokenText(tokenizer, token));
  }
  for (v1::TokenLogprob& top : *out.mutable_top()) {
    if (top.text().empty()) top.set_text(TokenText(tokenizer, top.token_id()));
  }
  return out;
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return v1::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kStop:
      return v1::FINISH_REASON_STOP;
    case FinishReason::kLength:
      return v1::FINISH_REASON_LENGTH;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

}  // namespace

v1::DecodeResponse MakeDecodeReply(const GeneratedToken& token, int index,
                                   const ReplyOptions& options,
                                   const Tokenizer& tokenizer) {
  v1::DecodeResponse reply;
  reply.add_token_ids(token.token);
  reply.set_text(token.text);
  reply.set_completion_tokens(index + 1);
  reply.set_finish_reason(ToProto(token.finish));
  if (!options.logprobs) return reply;
  if (index == 0 && !options.first_sampled_here) {
    *reply.add_logprobs() =
        FirstLogprobs(options.first_logprobs.value_or(v1::Logprobs()),
                      token.token, tokenizer);
    return reply;
  }
  v1::Logprobs* logprobs = reply.add_logprobs();
  SetEntry(tokenizer, token.token, token.logprob, logprobs->mutable_chosen());
  for (const TokenLogprob& top : token.top_logprobs) {
    SetEntry(tokenizer, top.token, top.logprob, logprobs->add_top());
  }
  return reply;
}

void MergeDecodeReply(const v1::DecodeResponse& next,
                      v1::DecodeResponse* into) {
  into->mutable_token_ids()->Add(next.token_ids().begin(),
                                 next.token_ids().end());
  into->mutable_text()->append(next.text());
  for (const v1::Logprobs& logprobs : next.logprobs()) {
    *into->add_logprobs() = logprobs;
  }
  into->set_finish_reason(next.finish_reason());
  into->set_completion_tokens(next.completion_tokens());
}

}  // namespace tandem
