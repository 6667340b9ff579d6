#include "router/openai_json.h"

#include <utility>

#include "absl/strings/str_format.h"

namespace tandem {
namespace {

using nlohmann::json;

const char* FinishName(v1::FinishReason reason) {
  return reason == v1::FINISH_REASON_STOP ? "stop" : "length";
}

// Unicode code points in `text`: its bytes that do not continue a UTF-8
// sequence.
int64_t CodePoints(absl::string_view text) {
  int64_t n = 0;
  for (unsigned char c : text) n += (c & 0xc0) != 0x80;
  return n;
}

// Whether `text` is well-formed UTF-8 as far as sequence lengths go (the
// JSON writer replaces whatever else is wrong).
bool IsUtf8(absl::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = text[i];
    size_t extra;
    if (c < 0x80) {
      extra = 0;
    } else if ((c & 0xe0) == 0xc0) {
      extra = 1;
    } else if ((c & 0xf0) == 0xe0) {
      extra = 2;
    } else if ((c & 0xf8) == 0xf0) {
      extra = 3;
    } else {
      return false;
    }
    if (text.size() - i <= extra) return false;
    for (size_t k = 1; k <= extra; ++k) {
      if ((static_cast<unsigned char>(text[i + k]) & 0xc0) != 0x80) {
        return false;
      }
    }
    i += extra + 1;
  }
  return true;
}

// A token's text as OpenAI shows it: the text, or "bytes:\xNN..." for a
// token that is not valid UTF-8 on its own (part of a character).
std::string TokenString(absl::string_view text) {
  if (IsUtf8(text)) return std::string(text);
  std::string out = "bytes:";
  for (unsigned char c : text) absl::StrAppendFormat(&out, "\\x%02x", c);
  return out;
}

json UsageJson(const v1::Usage& usage) {
  return {
      {"prompt_tokens", usage.prompt_tokens()},
      {"completion_tokens", usage.completion_tokens()},
      {"total_tokens", usage.prompt_tokens() + usage.completion_tokens()},
      {"prompt_tokens_details", {{"cached_tokens", usage.cached_tokens()}}}};
}

const char* ErrorType(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
      return "invalid_request_error";
    case absl::StatusCode::kUnauthenticated:
      return "authentication_error";
    case absl::StatusCode::kResourceExhausted:
      return "rate_limit_error";
    default:
      return "server_error";
  }
}

// OpenAI's `code` for `status`, or null.
json ErrorCode(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return "model_not_found";
    case absl::StatusCode::kUnauthenticated:
      return "invalid_api_key";
    case absl::StatusCode::kResourceExhausted:
      return "overloaded";
    case absl::StatusCode::kUnavailable:
      return "service_unavailable";
    case absl::StatusCode::kDeadlineExceeded:
      return "timeout";
    default:
      return nullptr;
  }
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

json ErrorJson(const absl::Status& status, absl::string_view param) {
  std::string name(param);
  if (name.empty()) name = ParamOf(status.message());
  if (name.empty() && status.code() == absl::StatusCode::kNotFound) {
    name = "model";
  }
  json error = {{"message", std::string(status.message())},
                {"type", ErrorType(status.code())},
                {"param", name.empty() ? json(nullptr) : json(name)},
                {"code", ErrorCode(status)}};
  return {{"error", std::move(error)}};
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false,
                    json::error_handler_t::replace);
}

CompletionBuilder::CompletionBuilder(std::string id, int64_t created,
                                     std::string model, bool logprobs)
    : id_(std::move(id)),
      created_(created),
      model_(std::move(model)),
      logprobs_(logprobs),
      all_logprobs_({{"tokens", json::array()},
                     {"token_logprobs", json::array()},
                     {"top_logprobs", json::array()},
                     {"text_offset", json::array()}}) {}

json CompletionBuilder::Base() const {
  return {{"id", id_},
          {"object", "text_completion"},
          {"created", created_},
          {"model", model_}};
}

json CompletionBuilder::Logprobs(const v1::GenerateResponse& reply) {
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const v1::Logprobs& token : reply.logprobs()) {
    out["tokens"].push_back(TokenString(token.chosen().text()));
    out["token_logprobs"].push_back(token.chosen().logprob());
    json top = json::object();
    for (const v1::TokenLogprob& alt : token.top()) {
      // Two ids with the same text keep the more probable (the first).
      top.emplace(TokenString(alt.text()), alt.logprob());
    }
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(offset_);
    offset_ += CodePoints(token.chosen().text());
  }
  return out;
}

json CompletionBuilder::Chunk(const v1::GenerateResponse& reply) {
  json choice = {{"text", reply.text()},
                 {"index", 0},
                 {"logprobs", logprobs_ ? Logprobs(reply) : json(nullptr)},
                 {"finish_reason", nullptr}};
  if (reply.has_usage()) usage_ = reply.usage();
  const bool last = reply.finish_reason() != v1::FINISH_REASON_UNSPECIFIED;
  if (last) {
    finish_ = reply.finish_reason();
    choice["finish_reason"] = FinishName(finish_);
  }
  json chunk = Base();
  chunk["choices"] = json::array({std::move(choice)});
  // The last chunk carries the usage too, so that clients need no extra
  // chunk to learn it.
  if (last) chunk["usage"] = UsageJson(usage_);
  return chunk;
}

json CompletionBuilder::UsageChunk() const {
  json chunk = Base();
  chunk["choices"] = json::array();
  chunk["usage"] = UsageJson(usage_);
  return chunk;
}

void CompletionBuilder::Add(const v1::GenerateResponse& reply) {
  text_ += reply.text();
  if (logprobs_) {
    json part = Logprobs(reply);
    for (const char* key :
         {"tokens", "token_logprobs", "top_logprobs", "text_offset"}) {
      for (json& item : part[key])
        all_logprobs_[key].push_back(std::move(item));
    }
  }
  if (reply.finish_reason() != v1::FINISH_REASON_UNSPECIFIED) {
    finish_ = reply.finish_reason();
  }
  if (reply.has_usage()) usage_ = reply.usage();
}

json CompletionBuilder::Completion() const {
  json out = Base();
  out["choices"] =
      json::array({{{"text", text_},
                    {"index", 0},
                    {"logprobs", logprobs_ ? all_logprobs_ : json(nullptr)},
                    {"finish_reason", FinishName(finish_)}}});
  out["usage"] = UsageJson(usage_);
  return out;
}

}  // namespace tandem
