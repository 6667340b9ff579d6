#include "tools/cli_common.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <system_error>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "engine/status_macros.h"

ABSL_FLAG(std::string, model, "models/fortune",
          "model directory (Hugging Face layout: config.json, *.safetensors, "
          "tokenizer.json), relative to the current directory");
ABSL_FLAG(int, threads, 0,
          "engine threads; 0 uses every core (or OMP_NUM_THREADS)");

namespace tandem {

int ReportError(std::string_view command, const absl::Status& status,
                int exit_code) {
  const std::string message = absl::StrReplaceAll(
      status.message(), {{"\r\n", " "}, {"\n", " "}, {"\r", " "}});
  std::fprintf(stderr, "tandem %.*s: %s\n", static_cast<int>(command.size()),
               command.data(), message.c_str());
  return exit_code;
}

std::optional<ParsedArgs> ParseCommandArgs(absl::Span<char* const> args,
                                           const FlagScope& scope,
                                           std::string_view command,
                                           std::string_view usage,
                                           int* exit_code) {
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, scope);
  if (!parsed.ok()) {
    *exit_code = ReportError(command, parsed.status(), kExitUsageError);
    return std::nullopt;
  }
  if (parsed->help) {
    const std::string help = std::string(usage) + FlagsHelp(scope);
    std::fputs(help.c_str(), stdout);
    *exit_code = 0;
    return std::nullopt;
  }
  return *std::move(parsed);
}

absl::Status WriteStdout(std::string_view text) {
  if (!text.empty() &&
      std::fwrite(text.data(), 1, text.size(), stdout) != text.size()) {
    return absl::UnavailableError(
        absl::StrCat("writing to stdout failed: ", std::strerror(errno)));
  }
  if (std::fflush(stdout) != 0) {
    return absl::UnavailableError(
        absl::StrCat("writing to stdout failed: ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadInput(const std::string& path) {
  if (path == "-") {
    std::string text((std::istreambuf_iterator<char>(std::cin)),
                     std::istreambuf_iterator<char>());
    if (std::cin.bad()) return absl::UnavailableError("reading stdin failed");
    return text;
  }
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat(path, ": no such file"));
  }
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is a directory, not a file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::UnavailableError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  }
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  if (in.bad()) {
    return absl::UnavailableError(absl::StrCat(path, ": read failed"));
  }
  return text;
}

absl::Status CheckThreadsFlag(int threads) {
  if (threads < 0 || threads > kMaxThreads) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--threads must be in [0, ", kMaxThreads, "], got ", threads));
  }
  return absl::OkStatus();
}

absl::StatusOr<LoadedModel> LoadModelDir(const std::string& dir, int threads) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(
        "model directory '", dir, "' does not exist",
        dir == "models/fortune"
            ? " (run from the repository root, or pass --model DIR)"
            : ""));
  }
  TANDEM_RETURN_IF_ERROR(CheckThreadsFlag(threads));
  LoadedModel loaded;
  TANDEM_ASSIGN_OR_RETURN(loaded.model,
                          Model::Load(dir, ModelOptions{.threads = threads}));
  TANDEM_ASSIGN_OR_RETURN(loaded.tokenizer, LoadTokenizer(dir));
  return loaded;
}

}  // namespace tandem
