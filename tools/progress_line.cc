#include "tools/progress_line.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace tandem {

ProgressLine::ProgressLine() : enabled_(isatty(STDERR_FILENO)) {}

ProgressLine::~ProgressLine() {
  if (shown_) std::fputs("\n", stderr);
}

void ProgressLine::Show(std::string_view text) {
  if (!enabled_) return;
  // Spaces cover what a longer previous line left behind.
  const size_t pad =
      shown_width_ > text.size() ? shown_width_ - text.size() : 0;
  std::fprintf(stderr, "\r%.*s%*s", static_cast<int>(text.size()), text.data(),
               static_cast<int>(pad), "");
  std::fflush(stderr);
  shown_width_ = text.size();
  shown_ = true;
}

std::string ProgressBar(int64_t done, int64_t total, int width) {
  const int64_t filled =
      total > 0 ? std::clamp<int64_t>(done * width / total, 0, width) : 0;
  return "[" + std::string(filled, '#') + std::string(width - filled, '-') +
         "]";
}

}  // namespace tandem
