// `tandem score FILE`: bits per byte of a text under a model, as
// tools/bits_per_byte.h defines it. See docs/cli.md.
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tools/bits_per_byte.h"
#include "tools/cli_args.h"
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "tools/progress_line.h"

ABSL_FLAG(bool, fortunes, false,
          "the file holds fortunes separated by lines of a lone '%'; each is "
          "scored as its own document (as the default model's held-out "
          "split); otherwise the whole file is one document");
ABSL_FLAG(int, stride, 0,
          "tokens between the starts of successive windows over a document "
          "longer than the context; 0: half the context");

namespace tandem {
namespace {

constexpr std::string_view kCommand = "score";

const FlagScope& Scope() {
  static const FlagScope* scope =
      new FlagScope{{"score_command.cc", kModelFlagsFile}, {}};
  return *scope;
}

constexpr char kUsage[] =
    "Usage: tandem score FILE [--model DIR] [--fortunes] [flags]\n\n"
    "Prints the bits per byte of FILE ('-' for stdin) under the model: the\n"
    "negative log2-likelihood of every predicted token (each byte and one\n"
    "EOS per document for the default model; each document starts with\n"
    "BOS) divided by the UTF-8 bytes plus the predicted EOS tokens.\n"
    "Progress goes to stderr when it is a terminal.\n\nFlags:\n";

int Score(const std::string& path) {
  if (absl::Status threads = CheckThreadsFlag(absl::GetFlag(FLAGS_threads));
      !threads.ok()) {
    return ReportError(kCommand, threads, kExitUsageError);
  }
  absl::StatusOr<std::string> text = ReadInput(path);
  if (!text.ok())
    return ReportError(kCommand, text.status(), kExitRuntimeError);
  absl::StatusOr<LoadedModel> loaded =
      LoadModelDir(absl::GetFlag(FLAGS_model), absl::GetFlag(FLAGS_threads));
  if (!loaded.ok()) {
    return ReportError(kCommand, loaded.status(), kExitRuntimeError);
  }
  const int context = loaded->model->config().max_position_embeddings;
  ScoreOptions options;
  options.stride = absl::GetFlag(FLAGS_stride);
  if (options.stride < 0 || options.stride > context) {
    return ReportError(
        kCommand,
        absl::InvalidArgumentError(absl::StrCat(
            "--stride must be in [0, ", context, "], got ", options.stride)),
        kExitUsageError);
  }
  std::vector<std::string> documents;
  if (absl::GetFlag(FLAGS_fortunes)) {
    documents = SplitFortunes(*text);
  } else {
    documents.push_back(*std::move(text));
  }
  absl::StatusOr<ScoreResult> result;
  {
    ProgressLine progress;
    result = ScoreDocuments(
        *loaded->model, *loaded->tokenizer, documents, options,
        [&progress](int64_t done, int64_t total) {
          if (total == 0) return;
          progress.Show(absl::StrFormat("scored %d/%d tokens (%d%%)", done,
                                        total, 100 * done / total));
        });
  }
  if (!result.ok()) {
    return ReportError(kCommand, result.status(), kExitRuntimeError);
  }
  const std::string line = absl::StrCat(
      "bits_per_byte=", absl::StrFormat("%.6f", result->bits_per_byte()),
      " documents=", result->documents, " bytes=", result->bytes,
      " eos_tokens=", result->eos_tokens,
      " predicted_tokens=", result->predicted_tokens,
      " total_bits=", absl::StrFormat("%.3f", result->total_bits), "\n");
  absl::Status written = WriteStdout(line);
  if (!written.ok()) return ReportError(kCommand, written, kExitRuntimeError);
  return 0;
}

}  // namespace

int RunScoreCommand(absl::Span<char* const> args) {
  int exit_code = 0;
  std::optional<ParsedArgs> parsed =
      ParseCommandArgs(args, Scope(), kCommand, kUsage, &exit_code);
  if (!parsed.has_value()) return exit_code;
  if (parsed->positional.size() != 1) {
    return ReportError(
        kCommand,
        absl::InvalidArgumentError(
            parsed->positional.empty()
                ? "missing FILE to score (see tandem score --help)"
                : absl::StrCat("expected one FILE, got ",
                               parsed->positional.size(), " arguments")),
        kExitUsageError);
  }
  return Score(parsed->positional[0]);
}

}  // namespace tandem
