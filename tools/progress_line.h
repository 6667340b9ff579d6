// A one-line progress display on stderr for long-running subcommands
// (`tandem score`, `tandem bench`): each update rewrites the line in place
// ("\r"), and the line is ended when the display is destroyed. It shows
// nothing unless stderr is a terminal, so logs and pipes stay clean.
//
// Not thread-safe: callers serialize updates.
#ifndef TANDEM_TOOLS_PROGRESS_LINE_H_
#define TANDEM_TOOLS_PROGRESS_LINE_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem {

class ProgressLine {
 public:
  // Enabled when stderr is a terminal.
  ProgressLine();
  // Ends the line if anything was shown.
  ~ProgressLine();

  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // Replaces the line with `text` (one line, no newline).
  void Show(std::string_view text);

 private:
  const bool enabled_;
  size_t shown_width_ = 0;
  bool shown_ = false;
};

// "[#####-----]": a bar of `width` cells, `done` of `total` filled (an
// unknown total, 0, shows an empty bar).
std::string ProgressBar(int64_t done, int64_t total, int width);

}  // namespace tandem

#endif  // TANDEM_TOOLS_PROGRESS_LINE_H_
