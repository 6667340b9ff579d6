// ParseCompletionRequest and ParamOf (router/openai_json.h).
#include <cstdint>
#include <limits>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "engine/sampler.h"
#include "engine/status_macros.h"
#include "router/openai_json.h"

namespace tandem {
namespace {

using nlohmann::json;

// A short description of a JSON value for error messages.
std::string Describe(const json& value) {
  std::string text = DumpJson(value);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

absl::Status WrongType(absl::string_view name, absl::string_view expected,
                       const json& value) {
  return absl::InvalidArgumentError(
      absl::StrCat(name, " must be ", expected, ", got ", Describe(value)));
}

// The field `name` of `body`, or nullptr when absent or null.
const json* Field(const json& body, const char* name) {
  const auto it = body.find(name);
  if (it == body.end() || it->is_null()) return nullptr;
  return &*it;
}

absl::StatusOr<int64_t> IntegerOf(absl::string_view name, const json& value,
                                  int64_t min, int64_t max) {
  int64_t n = 0;
  if (value.is_number_unsigned()) {
    const uint64_t u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(max)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "=", u, " is above ", max));
    }
    n = static_cast<int64_t>(u);
  } else if (value.is_number_integer()) {
    n = value.get<int64_t>();
  } else {
    return WrongType(name, "an integer", value);
  }
  if (n < min || n > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, "=", n, " is outside [", min, ", ", max, "]"));
  }
  return n;
}

// Sets `*out` from the number field `name` when present.
template <typename Setter>
absl::Status OptionalFloat(const json& body, const char* name, Setter set) {
  const json* value = Field(body, name);
  if (value == nullptr) return absl::OkStatus();
  if (!value->is_number()) return WrongType(name, "a number", *value);
  set(value->get<double>());
  return absl::OkStatus();
}

absl::Status ParsePrompt(const json& body, v1::GenerateRequest* out);

absl::Status ParseTokenIds(absl::string_view name, const json& array,
                           v1::GenerateRequest* out) {
  v1::TokenIds* tokens = out->mutable_tokens();
  for (size_t i = 0; i < array.size(); ++i) {
    TANDEM_ASSIGN_OR_RETURN(
        int64_t id, IntegerOf(absl::StrCat(name, "[", i, "]"), array[i], 0,
                              std::numeric_limits<int32_t>::max()));
    tokens->add_ids(static_cast<int32_t>(id));
  }
  return absl::OkStatus();
}

absl::Status ParsePrompt(const json& body, v1::GenerateRequest* out) {
  const json* prompt = Field(body, "prompt");
  if (prompt == nullptr) {
    return absl::InvalidArgumentError(
        "prompt is required: a string or an array of token ids");
  }
  if (prompt->is_string()) {
    out->set_text(prompt->get<std::string>());
    return absl::OkStatus();
  }
  if (!prompt->is_array()) {
    return WrongType("prompt", "a string or an array of token ids", *prompt);
  }
  if (prompt->empty()) return absl::InvalidArgumentError("prompt is empty");
  const json& first = prompt->front();
  if (first.is_number()) return ParseTokenIds("prompt", *prompt, out);
  if (!first.is_string() && !first.is_array()) {
    return WrongType("prompt[0]", "a string or a token id", first);
  }
  if (prompt->size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prompt holds ", prompt->size(),
        " prompts; batches are not supported: send one prompt per request"));
  }
  if (first.is_string()) {
    out->set_text(first.get<std::string>());
    return absl::OkStatus();
  }
  if (first.empty()) return absl::InvalidArgumentError("prompt[0] is empty");
  return ParseTokenIds("prompt[0]", first, out);
}

absl::Status ParseStop(const json& body, v1::GenerateRequest* out) {
  const json* stop = Field(body, "stop");
  if (stop == nullptr) return absl::OkStatus();
  if (stop->is_string()) {
    out->add_stop(stop->get<std::string>());
    return absl::OkStatus();
  }
  if (!stop->is_array()) {
    return WrongType("stop", "a string or an array of strings", *stop);
  }
  for (size_t i = 0; i < stop->size(); ++i) {
    if (!(*stop)[i].is_string()) {
      return WrongType(absl::StrCat("stop[", i, "]"), "a string", (*stop)[i]);
    }
    out->add_stop((*stop)[i].get<std::string>());
  }
  return absl::OkStatus();
}

absl::Status ParseSampling(const json& body, v1::SamplingParams* s) {
  TANDEM_RETURN_IF_ERROR(OptionalFloat(
      body, "temperature", [s](double v) { s->set_temperature(v); }));
  TANDEM_RETURN_IF_ERROR(
      OptionalFloat(body, "top_p", [s](double v) { s->set_top_p(v); }));
  TANDEM_RETURN_IF_ERROR(
      OptionalFloat(body, "min_p", [s](double v) { s->set_min_p(v); }));
  TANDEM_RETURN_IF_ERROR(OptionalFloat(
      body, "presence_penalty", [s](double v) { s->set_presence_penalty(v); }));
  TANDEM_RETURN_IF_ERROR(
      OptionalFloat(body, "frequency_penalty",
                    [s](double v) { s->set_frequency_penalty(v); }));
  TANDEM_RETURN_IF_ERROR(
      OptionalFloat(body, "repetition_penalty",
                    [s](double v) { s->set_repetition_penalty(v); }));
  if (const json* top_k = Field(body, "top_k")) {
    TANDEM_ASSIGN_OR_RETURN(
        int64_t k,
        IntegerOf("top_k", *top_k, -1, std::numeric_limits<int32_t>::max()));
    s->set_top_k(static_cast<int32_t>(k));
  }
  if (const json* seed = Field(body, "seed")) {
    if (seed->is_number_unsigned()) {
      s->set_seed(seed->get<uint64_t>());
    } else if (seed->is_number_integer()) {
      // Negative seeds are valid in OpenAI's API; keep their bits.
      s->set_seed(static_cast<uint64_t>(seed->get<int64_t>()));
    } else {
      return WrongType("seed", "an integer", *seed);
    }
  }
  return absl::OkStatus();
}

// n, best_of, echo, suffix and logit_bias: accepted only with the values
// that mean what a single plain completion means.
absl::Status RejectUnsupported(const json& body) {
  for (const char* name : {"n", "best_of"}) {
    if (const json* value = Field(body, name)) {
      TANDEM_ASSIGN_OR_RETURN(int64_t n, IntegerOf(name, *value, 1, INT32_MAX));
      if (n != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            name, "=", n, " is not supported: one completion per request"));
      }
    }
  }
  if (const json* echo = Field(body, "echo")) {
    if (!echo->is_boolean()) return WrongType("echo", "a boolean", *echo);
    if (echo->get<bool>()) {
      return absl::InvalidArgumentError("echo=true is not supported");
    }
  }
  if (const json* suffix = Field(body, "suffix")) {
    if (!suffix->is_string()) return WrongType("suffix", "a string", *suffix);
    if (!suffix->get<std::string>().empty()) {
      return absl::InvalidArgumentError("suffix is not supported");
    }
  }
  if (const json* bias = Field(body, "logit_bias")) {
    if (!bias->is_object()) return WrongType("logit_bias", "an object", *bias);
    if (!bias->empty()) {
      return absl::InvalidArgumentError("logit_bias is not supported");
    }
  }
  return absl::OkStatus();
}

absl::Status ParseStreaming(const json& body, CompletionRequest* out) {
  if (const json* stream = Field(body, "stream")) {
    if (!stream->is_boolean()) return WrongType("stream", "a boolean", *stream);
    out->stream = stream->get<bool>();
  }
  if (const json* options = Field(body, "stream_options")) {
    if (!options->is_object()) {
      return WrongType("stream_options", "an object", *options);
    }
    if (const json* usage = Field(*options, "include_usage")) {
      if (!usage->is_boolean()) {
        return WrongType("stream_options.include_usage", "a boolean", *usage);
      }
      out->include_usage = usage->get<bool>();
    }
  }
  return absl::OkStatus();
}

absl::Status ParseLengthAndLogprobs(const json& body,
                                    v1::GenerateRequest* out) {
  // Absent: OpenAI's default; null: all the room the context leaves.
  const auto max_tokens = body.find("max_tokens");
  if (max_tokens == body.end()) {
    out->set_max_tokens(kOpenAiDefaultMaxTokens);
  } else if (!max_tokens->is_null()) {
    TANDEM_ASSIGN_OR_RETURN(int64_t n,
                            IntegerOf("max_tokens", *max_tokens, 1,
                                      std::numeric_limits<int32_t>::max()));
    out->set_max_tokens(static_cast<int32_t>(n));
  }
  out->set_logprobs(-1);
  if (const json* logprobs = Field(body, "logprobs")) {
    TANDEM_ASSIGN_OR_RETURN(int64_t n,
                            IntegerOf("logprobs", *logprobs, 0, kMaxLogprobs));
    out->set_logprobs(static_cast<int32_t>(n));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<CompletionRequest> ParseCompletionRequest(
    absl::string_view body_text) {
  const json body = json::parse(body_text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    return absl::InvalidArgumentError("the request body is not valid JSON");
  }
  if (!body.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the request body must be a JSON object, got ", body.type_name()));
  }
  CompletionRequest out;
  v1::GenerateRequest& generate = out.generate;
  if (const json* model = Field(body, "model")) {
    if (!model->is_string()) return WrongType("model", "a string", *model);
    generate.set_model(model->get<std::string>());
  }
  TANDEM_RETURN_IF_ERROR(ParsePrompt(body, &generate));
  TANDEM_RETURN_IF_ERROR(ParseLengthAndLogprobs(body, &generate));
  TANDEM_RETURN_IF_ERROR(ParseSampling(body, generate.mutable_sampling()));
  TANDEM_RETURN_IF_ERROR(ParseStop(body, &generate));
  TANDEM_RETURN_IF_ERROR(RejectUnsupported(body));
  TANDEM_RETURN_IF_ERROR(ParseStreaming(body, &out));
  return out;
}

std::string ParamOf(absl::string_view message) {
  static const auto* known = new absl::flat_hash_set<std::string>{
      "model",
      "prompt",
      "max_tokens",
      "temperature",
      "top_p",
      "top_k",
      "min_p",
      "presence_penalty",
      "frequency_penalty",
      "repetition_penalty",
      "seed",
      "stop",
      "logprobs",
      "n",
      "best_of",
      "echo",
      "suffix",
      "logit_bias",
      "stream",
      "stream_options",
  };
  absl::ConsumePrefix(&message, "sampling parameter ");
  size_t end = 0;
  while (end < message.size() &&
         (absl::ascii_islower(message[end]) || message[end] == '_')) {
    ++end;
  }
  std::string name(message.substr(0, end));
  if (name == "num_logprobs") return "logprobs";
  return known->contains(name) ? name : "";
}

}  // namespace tandem
