// SPDX-License-Identifier: MIT
// Tests of size and duration parsing and of every class of config error.
#include <gtest/gtest.h>

#include "config.h"

using namespace vmrd;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

// Parses text that must be valid.
Config parseOk(const std::string &text)
{
	auto c = parseConfig(text, "test.yaml");
	EXPECT_TRUE(c.ok()) << (c.ok() ? "" : c.error().message);
	return c.ok() ? c.value() : Config{};
}

// Parses text that must fail; returns the message.
std::string parseError(const std::string &text)
{
	auto c = parseConfig(text, "test.yaml");
	EXPECT_FALSE(c.ok()) << "config was accepted:\n" << text;
	return c.ok() ? "" : c.error().message;
}

const std::string minimal = "version: 1\nbackend:\n  name: mock\n";

} // namespace

TEST(Units, Sizes)
{
	EXPECT_EQ(parseSize("0"), 0u);
	EXPECT_EQ(parseSize("4096"), 4096u);
	EXPECT_EQ(parseSize("4M"), 4ull << 20);
	EXPECT_EQ(parseSize("128MiB"), 128ull << 20);
	EXPECT_EQ(parseSize("2G"), 2ull << 30);
	EXPECT_EQ(parseSize("2 GiB"), 2ull << 30);
	EXPECT_EQ(parseSize("1T"), 1ull << 40);
	EXPECT_EQ(parseSize("16K"), 16384u);
	for (const char *bad : {"", "M", "-1", "1.5G", "4X", "4 M B", "99999999999999999999", "16777216T", " 4M"})
		EXPECT_FALSE(parseSize(bad)) << bad;
}

TEST(Units, Durations)
{
	EXPECT_EQ(parseDuration("50ms"), milliseconds(50));
	EXPECT_EQ(parseDuration("10s"), seconds(10));
	EXPECT_EQ(parseDuration("500us"), Micros(500));
	EXPECT_EQ(parseDuration("5m"), seconds(300));
	EXPECT_EQ(parseDuration("0"), Micros(0));
	for (const char *bad : {"", "10", "s", "1.5s", "10sec", "-1s", "99999999999999999999h"})
		EXPECT_FALSE(parseDuration(bad)) << bad;
}

TEST(Units, Formatting)
{
	EXPECT_EQ(formatSize(0), "0 B");
	EXPECT_EQ(formatSize(128ull << 20), "128 MiB");
	EXPECT_EQ(formatSize(3ull << 29), "1536 MiB");
	EXPECT_EQ(formatSize((1ull << 30) + 1), "1.0 GiB");
	EXPECT_EQ(formatDuration(milliseconds(50)), "50ms");
	EXPECT_EQ(formatDuration(seconds(300)), "5m");
}

TEST(Config, MinimalGetsDefaults)
{
	Config c = parseOk(minimal);
	EXPECT_EQ(c.backend.choice, BackendConfig::Choice::One);
	EXPECT_EQ(c.backend.candidates, std::vector<std::string>{"mock"});
	EXPECT_TRUE(c.psi.system);
	ASSERT_EQ(c.psi.triggers.size(), 2u);
	EXPECT_EQ(c.psi.triggers[0].stall, milliseconds(100));
	EXPECT_EQ(c.psi.triggers[0].window, seconds(1));
	EXPECT_EQ(c.policy.preset, "server");
	EXPECT_EQ(c.policy.growStep, 32ull << 20);
	EXPECT_EQ(c.limits.max, 0u);
	EXPECT_EQ(c.paths.procfs, "/proc");
}

TEST(Config, CandidatesInOrderWithOptionsKeyedByName)
{
	Config c = parseOk(R"(version: 1
backend:
  name: [gunyah-membuf, virtio-mem]
  options:
    virtio-mem: {port: /dev/virtio-ports/other}
)");
	EXPECT_EQ(c.backend.choice, BackendConfig::Choice::List);
	EXPECT_EQ(c.backend.candidates, (std::vector<std::string>{"gunyah-membuf", "virtio-mem"}));
	ASSERT_EQ(c.backend.optionsOf("virtio-mem").size(), 1u);
	EXPECT_EQ(c.backend.optionsOf("virtio-mem")[0],
	          std::make_pair(std::string("port"), std::string("/dev/virtio-ports/other")));
	EXPECT_TRUE(c.backend.optionsOf("gunyah-membuf").empty());
	EXPECT_EQ(c.backend.optionsKey("virtio-mem"), "backend.options.virtio-mem");
	EXPECT_EQ(c.where.at(c.backend.optionsKey("virtio-mem")), "test.yaml:5:17: backend.options.virtio-mem");
}

TEST(Config, AutoTakesOptionsForAnyPlugin)
{
	Config c = parseOk("version: 1\nbackend:\n  name: auto\n  options:\n    mock: {block_size: 4M}\n");
	EXPECT_EQ(c.backend.choice, BackendConfig::Choice::Auto);
	EXPECT_TRUE(c.backend.candidates.empty());
	ASSERT_EQ(c.backend.optionsOf("mock").size(), 1u);
}

TEST(Config, FullDocument)
{
	Config c = parseOk(R"(version: 1
backend:
  name: mock
  plugin_dir: /opt/vendor/plugins
  call_timeout: 5s
  options:
    block_size: 2M
    fail_call: 3
psi:
  system: false
  cgroups: [/sys/fs/cgroup/work.slice/memory.pressure]
  triggers:
    - {kind: full, stall: 20ms, window: 500ms}
policy:
  preset: server
  grow_step: 64M
  headroom: 1G
limits:
  min: 256M
  max: 8G
  step_max: 1G
  min_interval: 2s
logging:
  level: debug
paths:
  procfs: /tmp/proc
  sysfs: /tmp/sys
)");
	EXPECT_EQ(c.backend.pluginDir, "/opt/vendor/plugins");
	EXPECT_EQ(c.backend.callTimeout, seconds(5));
	const BackendConfig::Options &options = c.backend.optionsOf("mock");
	ASSERT_EQ(options.size(), 2u);
	EXPECT_EQ(options[0], std::make_pair(std::string("block_size"), std::string("2M")));
	EXPECT_EQ(options[1], std::make_pair(std::string("fail_call"), std::string("3")));
	EXPECT_EQ(c.backend.optionsKey("mock"), "backend.options");
	EXPECT_FALSE(c.psi.system);
	ASSERT_EQ(c.psi.cgroups.size(), 1u);
	ASSERT_EQ(c.psi.triggers.size(), 1u);
	EXPECT_EQ(c.psi.triggers[0].kind, TriggerConfig::Kind::Full);
	EXPECT_EQ(c.psi.triggers[0].window, milliseconds(500));
	EXPECT_EQ(c.policy.growStep, 64ull << 20);
	EXPECT_EQ(c.policy.headroom, 1ull << 30);
	EXPECT_EQ(c.policy.sampleMax, seconds(2)); // from the preset
	EXPECT_EQ(c.limits.min, 256ull << 20);
	EXPECT_EQ(c.limits.max, 8ull << 30);
	EXPECT_EQ(c.limits.minInterval, seconds(2));
	EXPECT_EQ(c.logLevel, LogLevel::Debug);
	EXPECT_EQ(c.paths.sysfs, "/tmp/sys");
}

// Each error class, with the exact position (1-based) and the key it names.
struct ErrorCase {
	const char *name;
	std::string text;
	std::string expected; // a substring of the message
};

// By name: gtest would otherwise print the struct's bytes, padding too.
void PrintTo(const ErrorCase &c, std::ostream *os)
{
	*os << c.name;
}

class ConfigErrors : public testing::TestWithParam<ErrorCase>
{
};

TEST_P(ConfigErrors, NamesFileLineColumnAndKey)
{
	std::string msg = parseError(GetParam().text);
	EXPECT_NE(msg.find(GetParam().expected), std::string::npos) << "message was: " << msg;
}

INSTANTIATE_TEST_SUITE_P(
        Classes, ConfigErrors,
        testing::Values(
                ErrorCase{"syntax", "version: 1\nbackend: [unclosed\n", "test.yaml:3:1: YAML syntax error"},
                ErrorCase{"empty", "", "test.yaml:1:1: the file is empty"},
                ErrorCase{"not_a_map", "- 1\n", "test.yaml:1:1: expected a map, got a list"},
                ErrorCase{"no_version", "backend: {name: mock}\n", "test.yaml:1:1: version: missing"},
                ErrorCase{"bad_version", "version: 2\nbackend: {name: mock}\n",
                          "test.yaml:1:10: version: '2' is not supported"},
                ErrorCase{"no_backend", "version: 1\n", "backend: missing"},
                ErrorCase{"unknown_top", minimal + "polcy: {}\n",
                          "test.yaml:4:1: polcy: unknown key (known here: version, backend"},
                ErrorCase{"unknown_nested", minimal + "limits:\n  maxx: 1G\n",
                          "test.yaml:5:3: limits.maxx: unknown key"},
                ErrorCase{"bad_name", "version: 1\nbackend:\n  name: ../evil\n",
                          "test.yaml:3:9: backend.name: '../evil' is not a plugin name"},
                ErrorCase{"wrong_type_map", minimal + "psi: 5\n", "test.yaml:4:6: psi: expected a map, got '5'"},
                ErrorCase{"wrong_type_scalar", minimal + "limits:\n  max: [1, 2]\n",
                          "test.yaml:5:8: limits.max: expected a single value, got a list"},
                ErrorCase{"bad_size", minimal + "limits:\n  max: 4X\n",
                          "test.yaml:5:8: limits.max: '4X' is not a size"},
                ErrorCase{"bad_duration", minimal + "policy:\n  shrink_hold: 30\n",
                          "test.yaml:5:16: policy.shrink_hold: '30' is not a duration"},
                ErrorCase{"bad_bool", minimal + "psi:\n  system: yes please\n",
                          "test.yaml:5:11: psi.system: 'yes please' is not true or false"},
                ErrorCase{"bad_kind", minimal + "psi:\n  triggers:\n    - {kind: most, stall: 1ms, window: 1s}\n",
                          "test.yaml:6:14: psi.triggers[0].kind: 'most' is not some or full"},
                ErrorCase{"window_range", minimal + "psi:\n  triggers:\n    - {kind: some, stall: 1ms, window: 20s}\n",
                          "psi.triggers[0].window: must be more than 0 and at most 10s"},
                ErrorCase{"stall_range", minimal + "psi:\n  triggers:\n    - {kind: some, stall: 2s, window: 1s}\n",
                          "psi.triggers[0].stall: must be more than 0 and at most the window"},
                ErrorCase{"trigger_incomplete", minimal + "psi:\n  triggers:\n    - {kind: some}\n",
                          "test.yaml:6:7: psi.triggers[0]: needs all of kind, stall and window"},
                ErrorCase{"no_source", minimal + "psi:\n  system: false\n", "psi: no source"},
                ErrorCase{"relative_cgroup", minimal + "psi:\n  cgroups: [memory.pressure]\n",
                          "psi.cgroups[0]: 'memory.pressure' is not an absolute path"},
                ErrorCase{"unknown_preset", minimal + "policy:\n  preset: turbo\n",
                          "test.yaml:5:11: policy.preset: unknown preset 'turbo' (known: server, rfc-reference)"},
                ErrorCase{"other_presets_key", minimal + "policy:\n  chunk: 4M\n",
                          "test.yaml:5:3: policy.chunk: belongs to the rfc-reference preset, not server (set "
                          "policy.preset: "
                          "rfc-reference to use it)"},
                ErrorCase{"unknown_policy_key", minimal + "policy:\n  preset: rfc-reference\n  chunks: 4M\n",
                          "test.yaml:6:3: policy.chunks: unknown key (known for the rfc-reference preset: preset, "
                          "chunk,"},
                ErrorCase{"bad_percent", minimal + "policy:\n  preset: rfc-reference\n  swap_discount: 150\n",
                          "test.yaml:6:18: policy.swap_discount: '150' is not a whole number from 0 to 100"},
                ErrorCase{"retired_key", minimal + "policy:\n  shrink_idle: 30s\n",
                          "test.yaml:5:3: policy.shrink_idle: no longer exists: memory now goes back once it stayed "
                          "spare for shrink_hold (README: How vmrd decides); remove it"},
                ErrorCase{"renamed_preset", minimal + "policy:\n  preset: embedded\n",
                          "test.yaml:5:11: policy.preset: 'embedded' is now named 'rfc-reference'"},
                ErrorCase{"sample_min_too_short", minimal + "policy:\n  sample_min: 1ms\n",
                          "test.yaml:5:15: policy.sample_min: must be at least 10ms"},
                ErrorCase{"sample_max_below_min", minimal + "policy:\n  sample_min: 1s\n  sample_max: 500ms\n",
                          "test.yaml:6:15: policy.sample_max: must be at least sample_min (1s)"},
                ErrorCase{"bad_oom_adj", minimal + "daemon:\n  oom_score_adj: -2000\n",
                          "test.yaml:5:18: daemon.oom_score_adj: '-2000' is not a whole number from -1000 to 1000"},
                ErrorCase{"relative_guard", minimal + "guard:\n  cgroup: work.slice\n",
                          "guard.cgroup: 'work.slice' is not an absolute path"},
                ErrorCase{"guard_margin_over_headroom", minimal + "guard:\n  cgroup: /sys/fs/cgroup/w\n  margin: 96M\n",
                          "test.yaml:6:11: guard.margin: 96 MiB is not below policy.headroom 96 MiB: the workload "
                          "would be throttled before vmrd grows the guest"},
                ErrorCase{"min_over_max", minimal + "limits:\n  min: 2G\n  max: 1G\n",
                          "limits.min: 2 GiB is more than limits.max 1 GiB"},
                ErrorCase{"nested_option", minimal + "  options:\n    deep: {a: 1}\n",
                          "test.yaml:5:11: backend.options.deep: expected a single value, got a map"},
                ErrorCase{"one_name_keyed_options", minimal + "  options:\n    mock: {max: 1G}\n",
                          "test.yaml:5:11: backend.options.mock: expected a single value, got a map (options are "
                          "passed flat to the plugin); with one backend in backend.name its options are not keyed "
                          "by its name: move them up into backend.options"},
                ErrorCase{"empty_list", "version: 1\nbackend:\n  name: []\n",
                          "test.yaml:3:9: backend.name: an empty list; name at least one backend plugin, or auto"},
                ErrorCase{"auto_in_list", "version: 1\nbackend:\n  name: [auto, mock]\n",
                          "test.yaml:3:10: backend.name[0]: auto stands alone (backend.name: auto), not in a list"},
                ErrorCase{"listed_twice", "version: 1\nbackend:\n  name: [mock, mock]\n",
                          "test.yaml:3:16: backend.name[1]: 'mock' is listed twice"},
                ErrorCase{"bad_name_in_list", "version: 1\nbackend:\n  name: [mock, Mock]\n",
                          "test.yaml:3:16: backend.name[1]: 'Mock' is not a plugin name (only a-z, 0-9 and -)"},
                ErrorCase{"name_map", "version: 1\nbackend:\n  name: {mock: 1}\n",
                          "test.yaml:3:9: backend.name: expected a single value, got a map"},
                ErrorCase{"options_of_unlisted",
                          "version: 1\nbackend:\n  name: [virtio-mem]\n  options:\n    mock: {max: 1G}\n",
                          "test.yaml:5:5: backend.options.mock: 'mock' is not in backend.name [virtio-mem]: with a "
                          "list, options are keyed by the name of a backend in it"},
                ErrorCase{"flat_options_with_auto", "version: 1\nbackend:\n  name: auto\n  options:\n    port: /x\n",
                          "test.yaml:5:11: backend.options.port: expected the options of backend 'port' as a map, "
                          "got '/x': with a list or auto in backend.name, options are keyed by backend name"},
                ErrorCase{"keyed_option_nested",
                          "version: 1\nbackend:\n  name: auto\n  options:\n    mock: {max: [1]}\n",
                          "test.yaml:5:17: backend.options.mock.max: expected a single value, got a list"},
                ErrorCase{"bad_level", minimal + "logging:\n  level: loud\n",
                          "logging.level: 'loud' is not error, warning, info or debug"},
                ErrorCase{"relative_socket", minimal + "control:\n  socket: vmrd.sock\n",
                          "test.yaml:5:11: control.socket: 'vmrd.sock' is not an absolute path"},
                ErrorCase{"long_socket", minimal + "control:\n  socket: /" + std::string(120, 'x') + "\n",
                          "control.socket: longer than the 107 bytes a unix socket path can have"},
                ErrorCase{"http_hostname", minimal + "control:\n  http: localhost:9560\n",
                          "test.yaml:5:9: control.http: 'localhost:9560' is not PORT (on loopback) or ADDRESS:PORT"},
                ErrorCase{
                        "duplicate_section", minimal + "limits: {max: 1G}\nlimits: {max: 2G}\n",
                        "test.yaml:5:1: limits: duplicate key: already set at line 4, column 1 (keep one of the two)"},
                ErrorCase{"duplicate_option", minimal + "  options:\n    max: 1G\n    max: 2G\n",
                          "test.yaml:6:5: backend.options.max: duplicate key: already set at line 5, column 5"},
                ErrorCase{"duplicate_in_list",
                          minimal + "psi:\n  triggers:\n    - {kind: some, kind: full, stall: 1ms, window: 1s}\n",
                          "test.yaml:6:20: psi.triggers[0].kind: duplicate key: already set at line 6, column 8"},
                ErrorCase{"small_trace", minimal + "daemon:\n  trace_max_size: 1K\n",
                          "daemon.trace_max_size: must be 0 (unbounded) or at least 64K"}),
        [](const testing::TestParamInfo<ErrorCase> &i) { return std::string(i.param.name); });

TEST(Config, EmbeddedPresetBringsItsTriggersAndDefaults)
{
	Config c = parseOk(minimal + "policy:\n  preset: rfc-reference\n  holdoff_max: 10s\n");
	EXPECT_EQ(c.policy.preset, "rfc-reference");
	EXPECT_EQ(c.policy.chunk, 4ull << 20);
	EXPECT_EQ(c.policy.holdoffMax, seconds(10));
	ASSERT_EQ(c.psi.triggers.size(), 10u);
	EXPECT_EQ(c.psi.triggers[9].stall, milliseconds(50));
	// Triggers in the config win over the preset's.
	c = parseOk(minimal +
	            "policy: {preset: rfc-reference}\npsi:\n  triggers: [{kind: full, stall: 1s, window: 2s}]\n");
	ASSERT_EQ(c.psi.triggers.size(), 1u);
	EXPECT_EQ(c.psi.triggers[0].kind, TriggerConfig::Kind::Full);
}

TEST(Config, DaemonControlAndGuardSections)
{
	Config c = parseOk(minimal + "daemon:\n  mlock: false\n  oom_score_adj: -500\n  online_movable: true\n"
	                             "  release_on_exit: true\n  trace: /tmp/t.jsonl\n  trace_max_size: 1M\n"
	                             "guard:\n  cgroup: /sys/fs/cgroup/w\n  margin: 64M\n"
	                             "control:\n  socket: /run/x.sock\n  http: '[::1]:9100'\n");
	EXPECT_FALSE(c.daemon.mlock);
	EXPECT_EQ(c.daemon.oomScoreAdj, -500);
	EXPECT_TRUE(c.daemon.onlineMovable);
	EXPECT_TRUE(c.daemon.releaseOnExit);
	EXPECT_EQ(c.daemon.trace, "/tmp/t.jsonl");
	EXPECT_EQ(c.daemon.traceMaxSize, 1u << 20);
	EXPECT_EQ(c.control.socket, "/run/x.sock");
	EXPECT_EQ(c.control.http, "[::1]:9100");
	EXPECT_EQ(c.guard.cgroup, "/sys/fs/cgroup/w");
	EXPECT_EQ(c.guard.margin, 64ull << 20);
}

TEST(Config, ReportsEveryErrorNotJustTheFirst)
{
	std::string msg = parseError(minimal + "limits:\n  max: 4X\n  min: 1Q\n");
	EXPECT_NE(msg.find("limits.max"), std::string::npos) << msg;
	EXPECT_NE(msg.find("limits.min"), std::string::npos) << msg;
}

TEST(Config, MissingFileNamesThePath)
{
	auto c = loadConfig("/nonexistent/vmrd.yaml");
	ASSERT_FALSE(c.ok());
	EXPECT_EQ(c.error().code, -ENOENT);
	EXPECT_NE(c.error().message.find("/nonexistent/vmrd.yaml: cannot read the config file"), std::string::npos);
}

// The shipped configs must load: the documented example and one per backend.
TEST(Config, ShippedConfigsLoad)
{
	for (const char *file : VMRD_SHIPPED_CONFIGS) {
		auto c = loadConfig(file);
		EXPECT_TRUE(c.ok()) << file << ": " << (c.ok() ? "" : c.error().message);
	}
}

// config/vmrd.yaml documents the defaults: its values must equal them.
TEST(Config, DocumentedExampleEqualsDefaults)
{
	auto doc = loadConfig(VMRD_SOURCE_DIR "/config/vmrd.yaml");
	ASSERT_TRUE(doc.ok()) << doc.error().message;
	// The shipped config lets vmrd choose: it must work wherever it is installed.
	EXPECT_EQ(doc->backend.choice, BackendConfig::Choice::Auto);
	Config def = parseOk("version: 1\nbackend: {name: auto}\n");
	const Config &d = doc.value();
	EXPECT_EQ(d.backend.callTimeout, def.backend.callTimeout);
	EXPECT_EQ(d.psi.system, def.psi.system);
	ASSERT_EQ(d.psi.triggers.size(), def.psi.triggers.size());
	for (size_t i = 0; i < d.psi.triggers.size(); i++) {
		EXPECT_EQ(d.psi.triggers[i].kind, def.psi.triggers[i].kind);
		EXPECT_EQ(d.psi.triggers[i].stall, def.psi.triggers[i].stall);
		EXPECT_EQ(d.psi.triggers[i].window, def.psi.triggers[i].window);
	}
	EXPECT_EQ(d.policy.preset, def.policy.preset);
	EXPECT_EQ(describePolicy(d.policy), describePolicy(def.policy));
	EXPECT_EQ(d.daemon.mlock, def.daemon.mlock);
	EXPECT_EQ(d.daemon.oomScoreAdj, def.daemon.oomScoreAdj);
	EXPECT_EQ(d.daemon.onlineMovable, def.daemon.onlineMovable);
	EXPECT_EQ(d.daemon.releaseOnExit, def.daemon.releaseOnExit);
	EXPECT_EQ(d.daemon.trace, def.daemon.trace);
	EXPECT_EQ(d.daemon.traceMaxSize, def.daemon.traceMaxSize);
	EXPECT_EQ(d.control.socket, def.control.socket);
	EXPECT_EQ(d.control.http, def.control.http);
	EXPECT_EQ(d.guard.cgroup, def.guard.cgroup);
	EXPECT_EQ(d.guard.margin, def.guard.margin);
	EXPECT_EQ(d.limits.min, def.limits.min);
	EXPECT_EQ(d.limits.max, def.limits.max);
	EXPECT_EQ(d.limits.stepMax, def.limits.stepMax);
	EXPECT_EQ(d.limits.minInterval, def.limits.minInterval);
	EXPECT_EQ(d.logLevel, def.logLevel);
	EXPECT_EQ(d.paths.procfs, def.paths.procfs);
	EXPECT_EQ(d.paths.sysfs, def.paths.sysfs);
}
