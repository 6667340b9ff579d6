// `tandem bench --router HOST:PORT`: a serving benchmark against a running
// cluster (bench/serving_driver.h); prints a summary table and writes the
// JSON report, optionally with plots. See docs/cli.md and
// docs/benchmarks.md.
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "bench/serving_driver.h"
#include "bench/serving_report.h"
#include "bench/serving_workload.h"
#include "engine/status_macros.h"
#include "tools/cli_args.h"
#include "tools/cli_common.h"
#include "tools/commands.h"
#include "tools/progress_line.h"

// Defined as bench_<name> and given as --<name> (FlagScope::prefix).
ABSL_FLAG(std::string, bench_router, "",
          "host:port of the router to load (required)");
ABSL_FLAG(std::string, bench_api_key, "",
          "API key sent as 'authorization: Bearer KEY'; empty: the "
          "TANDEM_API_KEY environment variable, if set");
ABSL_FLAG(std::string, bench_model, "",
          "model id to request; empty: the cluster's only model");
ABSL_FLAG(std::string, bench_rate, "",
          "open loop: Poisson arrivals at this many requests per second (> 0)");
ABSL_FLAG(int, bench_concurrency, 0,
          "closed loop: keep this many requests in flight (>= 1); 0: off");
ABSL_FLAG(int64_t, bench_num_requests, 0,
          "requests to send; 0: as many as --duration allows (or the whole "
          "trace)");
ABSL_FLAG(absl::Duration, bench_duration, absl::ZeroDuration(),
          "start no request after this long, e.g. 60s; 0: no limit");
ABSL_FLAG(uint64_t, bench_seed, 0,
          "seed of arrivals, lengths, prompts and sampling (request i "
          "samples with seed + i)");
ABSL_FLAG(std::string, bench_input_len, "128",
          "prompt tokens: N, uniform:A:B or normal:MEAN:SD (ignored with "
          "--trace)");
ABSL_FLAG(std::string, bench_output_len, "64",
          "tokens to generate (max_tokens): N, uniform:A:B or "
          "normal:MEAN:SD (ignored with --trace)");
ABSL_FLAG(std::string, bench_trace, "",
          "a Mooncake-format trace (JSON lines: timestamp, input_length, "
          "output_length, hash_ids); its lengths and shared prefixes make "
          "the requests, and its timestamps the arrivals unless --rate or "
          "--concurrency is given");
ABSL_FLAG(int, bench_trace_block_tokens, 512,
          "tokens per trace hash id (before --trace-scale)");
ABSL_FLAG(double, bench_trace_scale, 1.0,
          "multiplies the trace's lengths and block size (> 0)");
ABSL_FLAG(double, bench_trace_time_scale, 1.0,
          "divides the trace's timestamps: 2 replays it twice as fast (> 0)");
ABSL_FLAG(double, bench_slo_ttft_ms, 1000,
          "goodput counts requests with TTFT at most this; 0: no bound");
ABSL_FLAG(double, bench_slo_tpot_ms, 100,
          "goodput counts requests with TPOT at most this; 0: no bound");
ABSL_FLAG(float, bench_temperature, 1.0f, "sampling temperature; 0: greedy");
ABSL_FLAG(bool, bench_ignore_eos, true,
          "ask for exactly max_tokens tokens (the request's ignore_eos)");
ABSL_FLAG(absl::Duration, bench_request_timeout, absl::Minutes(10),
          "deadline of each request");
ABSL_FLAG(std::string, bench_out, "",
          "write the JSON report (summary and every request) here");
ABSL_FLAG(std::string, bench_label, "",
          "the run's name in the report and plots; empty: from the mode");
ABSL_FLAG(std::string, bench_plot, "",
          "after the run, draw latency plots into this directory with "
          "--plot-script (the report goes to DIR/report.json unless --out)");
ABSL_FLAG(std::string, bench_plot_script, "bench/plot_serving.py",
          "the plotting script --plot runs with python3");

namespace tandem {
namespace {

using bench::ArrivalSchedule;
using bench::BenchRequest;
using bench::LengthDistribution;
using bench::TraceEntry;
using json = nlohmann::json;

constexpr std::string_view kCommand = "bench";

const FlagScope& Scope() {
  static const FlagScope* scope =
      new FlagScope{{"bench_command.cc"}, {}, "bench_"};
  return *scope;
}

constexpr char kUsage[] =
    "Usage: tandem bench --router HOST:PORT (--rate R | --concurrency C |\n"
    "                    --trace FILE) [--num-requests N] [--duration D]\n"
    "                    [--out report.json] [flags]\n\n"
    "Sends generation requests to a running cluster, measures each on the\n"
    "client (TTFT, inter-token gaps, TPOT, end-to-end latency), prints a\n"
    "summary table and writes a JSON report. Progress goes to stderr when\n"
    "it is a terminal.\n\nFlags:\n";

// The run, from the flags.
struct BenchPlan {
  bench::DriverOptions driver;
  std::optional<double> rate;
  LengthDistribution input, output;
  std::string trace_path;
  bench::TraceScaling scaling;
  double time_scale = 1;
  bench::Slo slo;
  std::string label;
  std::string out, plot_dir;
};

absl::Status Invalid(absl::string_view message) {
  return absl::InvalidArgumentError(message);
}

absl::Status CheckArrivalFlags(BenchPlan& plan) {
  const std::string rate = absl::GetFlag(FLAGS_bench_rate);
  if (!rate.empty()) {
    double value = 0;
    if (!absl::SimpleAtod(rate, &value) || !(value > 0) ||
        !std::isfinite(value)) {
      return Invalid(
          absl::StrCat("--rate must be a number > 0, got '", rate, "'"));
    }
    plan.rate = value;
  }
  plan.driver.concurrency = absl::GetFlag(FLAGS_bench_concurrency);
  if (plan.driver.concurrency < 0) {
    return Invalid("--concurrency must be >= 1 (0: open loop)");
  }
  if (plan.rate.has_value() && plan.driver.concurrency > 0) {
    return Invalid("give --rate or --concurrency, not both");
  }
  if (!plan.rate.has_value() && plan.driver.concurrency == 0 &&
      plan.trace_path.empty()) {
    return Invalid(
        "give --rate (open loop), --concurrency (closed loop) or --trace "
        "(its timestamps)");
  }
  plan.driver.num_requests = absl::GetFlag(FLAGS_bench_num_requests);
  plan.driver.duration = absl::GetFlag(FLAGS_bench_duration);
  if (plan.driver.num_requests < 0) return Invalid("--num-requests is < 0");
  if (plan.driver.duration < absl::ZeroDuration()) {
    return Invalid("--duration is negative");
  }
  if (plan.driver.duration == absl::ZeroDuration()) {
    plan.driver.duration = absl::InfiniteDuration();
  }
  if (plan.driver.num_requests == 0 &&
      plan.driver.duration == absl::InfiniteDuration() &&
      plan.trace_path.empty()) {
    return Invalid("give --num-requests or --duration to end the run");
  }
  return absl::OkStatus();
}

absl::Status CheckWorkloadFlags(BenchPlan& plan) {
  TANDEM_ASSIGN_OR_RETURN(
      plan.input,
      bench::ParseLengthDistribution(absl::GetFlag(FLAGS_bench_input_len)));
  TANDEM_ASSIGN_OR_RETURN(
      plan.output,
      bench::ParseLengthDistribution(absl::GetFlag(FLAGS_bench_output_len)));
  plan.scaling.block_tokens = absl::GetFlag(FLAGS_bench_trace_block_tokens);
  plan.scaling.scale = absl::GetFlag(FLAGS_bench_trace_scale);
  plan.time_scale = absl::GetFlag(FLAGS_bench_trace_time_scale);
  if (plan.scaling.block_tokens < 1) {
    return Invalid("--trace-block-tokens must be >= 1");
  }
  if (!(plan.scaling.scale > 0) || !(plan.time_scale > 0)) {
    return Invalid("--trace-scale and --trace-time-scale must be > 0");
  }
  plan.slo = {absl::GetFlag(FLAGS_bench_slo_ttft_ms),
              absl::GetFlag(FLAGS_bench_slo_tpot_ms)};
  if (plan.slo.ttft_ms < 0 || plan.slo.tpot_ms < 0) {
    return Invalid("--slo-ttft-ms and --slo-tpot-ms must be >= 0");
  }
  plan.driver.temperature = absl::GetFlag(FLAGS_bench_temperature);
  if (!(plan.driver.temperature >= 0)) {
    return Invalid("--temperature must be >= 0");
  }
  return absl::OkStatus();
}

absl::StatusOr<BenchPlan> PlanFromFlags() {
  BenchPlan plan;
  bench::RouterTarget& target = plan.driver.target;
  target.address = absl::GetFlag(FLAGS_bench_router);
  if (target.address.empty()) return Invalid("--router HOST:PORT is required");
  target.api_key = absl::GetFlag(FLAGS_bench_api_key);
  if (const char* key = std::getenv("TANDEM_API_KEY");
      target.api_key.empty() && key != nullptr) {
    target.api_key = key;
  }
  target.model = absl::GetFlag(FLAGS_bench_model);
  plan.trace_path = absl::GetFlag(FLAGS_bench_trace);
  TANDEM_RETURN_IF_ERROR(CheckArrivalFlags(plan));
  TANDEM_RETURN_IF_ERROR(CheckWorkloadFlags(plan));
  plan.driver.seed = absl::GetFlag(FLAGS_bench_seed);
  plan.driver.ignore_eos = absl::GetFlag(FLAGS_bench_ignore_eos);
  plan.driver.request_timeout = absl::GetFlag(FLAGS_bench_request_timeout);
  if (plan.driver.request_timeout <= absl::ZeroDuration()) {
    return Invalid("--request-timeout must be positive");
  }
  plan.label = absl::GetFlag(FLAGS_bench_label);
  if (plan.label.empty()) {
    plan.label = plan.driver.concurrency > 0
                     ? absl::StrCat("concurrency=", plan.driver.concurrency)
                 : plan.rate.has_value() ? absl::StrCat("rate=", *plan.rate)
                                         : std::string("trace");
  }
  plan.out = absl::GetFlag(FLAGS_bench_out);
  plan.plot_dir = absl::GetFlag(FLAGS_bench_plot);
  if (plan.out.empty() && !plan.plot_dir.empty()) {
    plan.out = (std::filesystem::path(plan.plot_dir) / "report.json").string();
  }
  return plan;
}

json ConfigJson(const BenchPlan& plan, const bench::RouterModel& model,
                int64_t trace_entries) {
  const bench::DriverOptions& d = plan.driver;
  return {
      {"label", plan.label},
      {"router", d.target.address},
      {"model", model.id},
      {"max_context", model.max_context},
      {"mode", d.concurrency > 0       ? "concurrency"
               : plan.rate.has_value() ? "rate"
                                       : "trace"},
      {"rate", plan.rate.has_value() ? json(*plan.rate) : json(nullptr)},
      {"concurrency", d.concurrency},
      {"num_requests", d.num_requests},
      {"duration_s", d.duration == absl::InfiniteDuration()
                         ? json(nullptr)
                         : json(absl::ToDoubleSeconds(d.duration))},
      {"seed", d.seed},
      {"input_len", plan.trace_path.empty()
                        ? json(bench::LengthDistributionName(plan.input))
                        : json(nullptr)},
      {"output_len", plan.trace_path.empty()
                         ? json(bench::LengthDistributionName(plan.output))
                         : json(nullptr)},
      {"trace", plan.trace_path},
      {"trace_entries", trace_entries},
      {"trace_block_tokens", plan.scaling.block_tokens},
      {"trace_scale", plan.scaling.scale},
      {"trace_time_scale", plan.time_scale},
      {"temperature", d.temperature},
      {"ignore_eos", d.ignore_eos},
      {"slo_ttft_ms", plan.slo.ttft_ms},
      {"slo_tpot_ms", plan.slo.tpot_ms},
      {"started_at",
       absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone())},
  };
}

std::string ProgressText(const bench::DriverProgress& p) {
  return absl::StrFormat("%s %d%s requests, %.2f req/s, %d errors, %.0fs",
                         ProgressBar(p.done, p.total, 20), p.done,
                         p.total > 0 ? absl::StrCat("/", p.total) : "",
                         p.elapsed_s > 0 ? p.done / p.elapsed_s : 0.0, p.errors,
                         p.elapsed_s);
}

absl::Status WriteReport(const std::string& path, const json& report) {
  std::ofstream out(path, std::ios::binary);
  out << report.dump(1) << "\n";
  out.close();
  if (!out) return absl::UnavailableError(absl::StrCat(path, ": write failed"));
  return absl::OkStatus();
}

// Runs `argv` (argv[0] looked up on the PATH) and returns whether it
// exited with status 0.
bool RunProgram(std::vector<std::string> argv) {
  std::vector<char*> args;
  for (std::string& arg : argv) args.push_back(arg.data());
  args.push_back(nullptr);
  pid_t pid = 0;
  if (posix_spawnp(&pid, args[0], nullptr, nullptr, args.data(), environ) !=
      0) {
    return false;
  }
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// Draws the plots; a failure is reported and leaves the report in place.
void Plot(const BenchPlan& plan) {
  // Debian's python3-matplotlib belongs to /usr/bin/python3, which may
  // not be the first python3 on the PATH.
  const std::string python =
      access("/usr/bin/python3", X_OK) == 0 ? "/usr/bin/python3" : "python3";
  if (!RunProgram({python, absl::GetFlag(FLAGS_bench_plot_script), "--out",
                   plan.plot_dir, plan.out})) {
    ReportError(kCommand,
                absl::UnavailableError(absl::StrCat(
                    "plotting failed (the report is in ", plan.out, ")")),
                0);
  }
}

// Request i of a synthetic workload or of the trace.
bench::RequestSource MakeSource(const BenchPlan& plan,
                                const std::vector<TraceEntry>& trace,
                                const bench::PromptSpace& space) {
  if (trace.empty()) {
    return [&plan, &space](int64_t index) -> std::optional<BenchRequest> {
      return bench::MakeSyntheticRequest(index, plan.input, plan.output, space);
    };
  }
  return [&plan, &trace, &space](int64_t index) -> std::optional<BenchRequest> {
    if (index >= static_cast<int64_t>(trace.size())) return std::nullopt;
    return bench::MakeTraceRequest(index, trace[index], plan.scaling, space);
  };
}

absl::StatusOr<std::vector<TraceEntry>> LoadTrace(const std::string& path) {
  if (path.empty()) return std::vector<TraceEntry>();
  TANDEM_ASSIGN_OR_RETURN(std::string text, ReadInput(path));
  absl::StatusOr<std::vector<TraceEntry>> trace = bench::ParseTrace(text);
  if (!trace.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", trace.status().message()));
  }
  return trace;
}

int Bench(BenchPlan plan) {
  absl::StatusOr<std::vector<TraceEntry>> trace = LoadTrace(plan.trace_path);
  if (!trace.ok()) {
    return ReportError(kCommand, trace.status(), kExitRuntimeError);
  }
  const bench::RouterTarget& target = plan.driver.target;
  absl::StatusOr<bench::RouterModel> model =
      bench::FetchRouterModel(target, absl::Seconds(10));
  if (!model.ok())
    return ReportError(kCommand, model.status(), kExitRuntimeError);
  bench::PromptSpace space;
  absl::StatusOr<std::vector<int32_t>> pool =
      bench::FetchTokenPool(target, absl::Seconds(10));
  if (!pool.ok())
    return ReportError(kCommand, pool.status(), kExitRuntimeError);
  space = {*std::move(pool), model->max_context, plan.driver.seed};
  if (!trace->empty()) {
    const int64_t entries = static_cast<int64_t>(trace->size());
    int64_t& limit = plan.driver.num_requests;
    limit = limit == 0 ? entries : std::min(limit, entries);
  }
  std::optional<ArrivalSchedule> schedule;
  if (plan.driver.concurrency == 0) {
    schedule = plan.rate.has_value()
                   ? ArrivalSchedule::Poisson(*plan.rate, plan.driver.seed)
                   : ArrivalSchedule::Trace(*trace, plan.time_scale);
  }
  const json config = ConfigJson(plan, *model, trace->size());
  bench::DriverResult result;
  {
    ProgressLine line;
    absl::Time last_shown = absl::InfinitePast();
    result = bench::RunServingBenchmark(
        plan.driver, schedule.has_value() ? &*schedule : nullptr,
        MakeSource(plan, *trace, space),
        [&](const bench::DriverProgress& progress) {
          const absl::Time now = absl::Now();
          if (now - last_shown < absl::Milliseconds(100) &&
              progress.done != progress.total) {
            return;
          }
          last_shown = now;
          line.Show(ProgressText(progress));
        });
  }
  const bench::Summary summary =
      bench::Summarize(result.records, result.duration_s, plan.slo);
  absl::Status written = WriteStdout(absl::StrCat(
      "run                ", plan.label, " against ", target.address,
      " (model ", model->id, ")\n", bench::SummaryTable(summary)));
  if (!plan.out.empty()) {
    if (!plan.plot_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(plan.plot_dir, ec);
    }
    written.Update(WriteReport(
        plan.out, bench::ReportJson(config, summary, result.records)));
  }
  if (!written.ok()) return ReportError(kCommand, written, kExitRuntimeError);
  if (!plan.plot_dir.empty()) Plot(plan);
  if (summary.ok == 0) {
    return ReportError(
        kCommand,
        absl::UnavailableError(absl::StrCat(
            "no request succeeded",
            result.records.empty()
                ? ""
                : absl::StrCat("; the first failed with ",
                               absl::StatusCodeToString(result.records[0].code),
                               ": ", result.records[0].error))),
        kExitRuntimeError);
  }
  return 0;
}

}  // namespace

int RunBenchCommand(absl::Span<char* const> args) {
  int exit_code = 0;
  std::optional<ParsedArgs> parsed =
      ParseCommandArgs(args, Scope(), kCommand, kUsage, &exit_code);
  if (!parsed.has_value()) return exit_code;
  if (!parsed->positional.empty()) {
    return ReportError(
        kCommand,
        absl::InvalidArgumentError(
            absl::StrCat("unexpected argument '", parsed->positional[0], "'")),
        kExitUsageError);
  }
  absl::StatusOr<BenchPlan> plan = PlanFromFlags();
  if (!plan.ok()) return ReportError(kCommand, plan.status(), kExitUsageError);
  return Bench(*std::move(plan));
}

}  // namespace tandem
